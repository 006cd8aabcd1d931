package pkgtest

import (
	"crypto/sha256"
	"math/rand/v2"
)

// Payload returns n pseudo-random bytes derived from seed. The same seed
// always gives the same bytes, and the bytes do not compress, so packages
// that carry them have the size asked for on disk and on the wire.
func Payload(seed string, n int) []byte {
	if n <= 0 {
		return nil
	}
	b := make([]byte, n)
	// ChaCha8.Read never fails and fills b completely.
	_, _ = rand.NewChaCha8(sha256.Sum256([]byte(seed))).Read(b)
	return b
}

// payloadSeed is the seed for the payload file of package name at version,
// shared by both formats so a Deb and an RPM of the same name and version
// carry the same bytes.
func payloadSeed(name, version string) string {
	return name + "\x00" + version
}
