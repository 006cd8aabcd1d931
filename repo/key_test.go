package repo

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestKeyPassphrase(t *testing.T) {
	t.Parallel()
	priv, pub, err := GenerateKey("sluice test", "test@sluice.invalid", Ed25519, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(priv, []byte("s3cret")) {
		t.Fatal("the passphrase appears in the key file")
	}
	for _, tc := range []struct {
		name string
		key  []byte
		pass string
		want error // nil: success; else errors.Is or message
		msg  string
	}{
		{"right", priv, "s3cret", nil, ""},
		{"wrong", priv, "guess", ErrBadPassphrase, ""},
		{"missing", priv, "", nil, "no passphrase"},
		{"public-key", pub, "", nil, "public key"},
		{"garbage", []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----\n"), "", nil, "read signing key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := ReadKey(bytes.NewReader(tc.key), []byte(tc.pass))
			switch {
			case tc.want == nil && tc.msg == "":
				if err != nil {
					t.Fatal(err)
				}
				var sig bytes.Buffer
				if err := k.DetachSign(&sig, strings.NewReader("data")); err != nil {
					t.Fatal(err)
				}
				kr, _ := openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
				if _, err := openpgp.CheckArmoredDetachedSignature(kr, strings.NewReader("data"), &sig, nil); err != nil {
					t.Fatalf("signature does not verify: %v", err)
				}
			case tc.want != nil:
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v, want one saying %q", err, tc.msg)
				}
			}
		})
	}
}

func TestGenerateKeyAlgorithms(t *testing.T) {
	t.Parallel()
	for _, algo := range []Algorithm{RSA4096, Ed25519} {
		t.Run(string(algo), func(t *testing.T) {
			t.Parallel()
			k, err := testKeyFor(algo)
			if err != nil {
				t.Fatal(err)
			}
			bits, _ := k.entity.PrimaryKey.BitLength()
			switch algo {
			case RSA4096:
				if bits != 4096 {
					t.Fatalf("RSA key of %d bits", bits)
				}
			case Ed25519:
				if k.entity.PrimaryKey.PubKeyAlgo != packet.PubKeyAlgoEdDSA {
					t.Fatalf("algorithm %v", k.entity.PrimaryKey.PubKeyAlgo)
				}
			}
		})
	}
	if _, _, err := GenerateKey("a", "b@c", "dsa1024", nil); err == nil {
		t.Fatal("an unknown algorithm was accepted")
	}
}

// TestReadKeyCannotSign: a key whose only signing key has expired is
// refused when it is read, not when the first signature fails.
func TestReadKeyCannotSign(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-48 * time.Hour)
	e, err := openpgp.NewEntity("old", "", "old@sluice.invalid", &packet.Config{
		Algorithm: packet.PubKeyAlgoEdDSA, KeyLifetimeSecs: 3600, Time: func() time.Time { return past },
	})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := armored(&b, openpgp.PrivateKeyType, func(w io.Writer) error { return e.SerializePrivateWithoutSigning(w, nil) }); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKey(&b, nil); err == nil || !strings.Contains(err.Error(), "no valid signing key") {
		t.Fatalf("err = %v, want a key that cannot sign to be refused", err)
	}
}
