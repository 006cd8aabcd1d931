package repo

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Algorithm names the public-key algorithm of a new signing key.
type Algorithm string

// Algorithms that apt's and rpm's key policies accept today and are expected
// to keep accepting (apt plans to require RSA of at least 3072 bits).
const (
	RSA4096 Algorithm = "rsa4096"
	Ed25519 Algorithm = "ed25519"
)

// ErrBadPassphrase is returned when a key's passphrase does not decrypt it.
var ErrBadPassphrase = errors.New("wrong passphrase for signing key")

// Key is an OpenPGP private key that signs repository metadata and RPMs.
type Key struct {
	entity *openpgp.Entity
	signer *packet.PrivateKey
	// public is the armored public key, serialized once: go-crypto's
	// Signature.Serialize writes to the signature on its first call, so
	// concurrent publishes with one key must not serialize it.
	public []byte
}

// GenerateKey makes a new OpenPGP signing key for name and email and returns
// it armored, the private key (encrypted when passphrase is not empty) and
// the public key.
func GenerateKey(name, email string, algo Algorithm, passphrase []byte) (private, public []byte, err error) {
	cfg := &packet.Config{DefaultHash: crypto.SHA256, Time: time.Now}
	switch algo {
	case RSA4096, "":
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 4096
	case Ed25519:
		cfg.Algorithm, cfg.Curve = packet.PubKeyAlgoEdDSA, packet.Curve25519
	default:
		return nil, nil, fmt.Errorf("generate key: unknown algorithm %q (want %s or %s)", algo, RSA4096, Ed25519)
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key %s <%s>: %w", name, email, err)
	}
	var pub bytes.Buffer
	if err := armored(&pub, openpgp.PublicKeyType, e.Serialize); err != nil {
		return nil, nil, fmt.Errorf("generate key: write public key: %w", err)
	}
	if len(passphrase) > 0 {
		if err := e.EncryptPrivateKeys(passphrase, cfg); err != nil {
			return nil, nil, fmt.Errorf("generate key: encrypt private key: %w", err)
		}
	}
	var priv bytes.Buffer
	err = armored(&priv, openpgp.PrivateKeyType, func(w io.Writer) error {
		return e.SerializePrivateWithoutSigning(w, nil)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: write private key: %w", err)
	}
	return priv.Bytes(), pub.Bytes(), nil
}

func armored(w io.Writer, blockType string, write func(io.Writer) error) error {
	aw, err := armor.Encode(w, blockType, nil)
	if err != nil {
		return err
	}
	if err := write(aw); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// ReadKey reads an armored OpenPGP private key and decrypts it with
// passphrase when it is encrypted. It fails when the key cannot sign.
func ReadKey(r io.Reader, passphrase []byte) (*Key, error) {
	el, err := openpgp.ReadArmoredKeyRing(r)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("read signing key: want one key, found %d", len(el))
	}
	e := el[0]
	if e.PrivateKey == nil {
		return nil, errors.New("read signing key: it is a public key, not a private one")
	}
	sk, ok := e.SigningKey(time.Now())
	if !ok || sk.PrivateKey == nil {
		return nil, fmt.Errorf("read signing key %X: no valid signing key (expired, revoked or not signing-capable)", e.PrimaryKey.Fingerprint)
	}
	if sk.PrivateKey.Encrypted {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("read signing key %X: it is encrypted and no passphrase was given", e.PrimaryKey.Fingerprint)
		}
		if err := e.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("read signing key %X: %w", e.PrimaryKey.Fingerprint, ErrBadPassphrase)
		}
	}
	if sk.PrivateKey.Dummy() {
		return nil, fmt.Errorf("read signing key %X: the secret part is not present (a stub)", e.PrimaryKey.Fingerprint)
	}
	var pub bytes.Buffer
	if err := armored(&pub, openpgp.PublicKeyType, e.Serialize); err != nil {
		return nil, fmt.Errorf("read signing key %X: public key: %w", e.PrimaryKey.Fingerprint, err)
	}
	return &Key{entity: e, signer: sk.PrivateKey, public: pub.Bytes()}, nil
}

func (k *Key) config() *packet.Config {
	return &packet.Config{DefaultHash: crypto.SHA256}
}

// Fingerprint is the key's primary fingerprint in upper-case hex.
func (k *Key) Fingerprint() string {
	return fmt.Sprintf("%X", k.entity.PrimaryKey.Fingerprint)
}

// ClearSign writes data as an OpenPGP cleartext-signed message (InRelease).
func (k *Key) ClearSign(w io.Writer, data []byte) error {
	pw, err := clearsign.Encode(w, k.signer, k.config())
	if err != nil {
		return fmt.Errorf("clearsign: %w", err)
	}
	if _, err := pw.Write(data); err != nil {
		return fmt.Errorf("clearsign: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("clearsign: %w", err)
	}
	return nil
}

// DetachSign writes an armored detached signature of r (Release.gpg,
// repomd.xml.asc).
func (k *Key) DetachSign(w io.Writer, r io.Reader) error {
	if err := openpgp.ArmoredDetachSign(w, k.entity, r, k.config()); err != nil {
		return fmt.Errorf("detach-sign: %w", err)
	}
	return nil
}

// WritePublic writes the armored public key.
func (k *Key) WritePublic(w io.Writer) error {
	_, err := w.Write(k.public)
	return err
}

// ReadKeyring reads armored or binary OpenPGP public keys.
func ReadKeyring(r io.Reader) (openpgp.EntityList, error) {
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	return el, nil
}
