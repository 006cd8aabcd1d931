package mirror

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// clientView reads the repository at dir as a client does while it may
// be changing: APT from dists/stable/InRelease, every index by hash, every
// package the indices name; RPM from repodata/repomd.xml (signature
// fetched again a few times on a mismatch, as dnf retries), every file it
// names, every package primary names. It returns what did not match.
func clientView(format, dir string, kr openpgp.EntityList) error {
	if format == "deb" {
		return aptView(dir, kr)
	}
	return rpmView(dir, kr)
}

func sha256File(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func aptView(dir string, kr openpgp.EntityList) error {
	dist := filepath.Join(dir, "dists", "stable")
	in, err := os.ReadFile(filepath.Join(dist, "InRelease"))
	if err != nil {
		return err
	}
	block, _ := clearsign.Decode(in)
	if block == nil {
		return errors.New("InRelease: not clearsigned")
	}
	if _, err := block.VerifySignature(kr, nil); err != nil {
		return fmt.Errorf("InRelease: %w", err)
	}
	inSHA := false
	var indices []string
	for line := range strings.SplitSeq(string(block.Plaintext), "\n") {
		if !strings.HasPrefix(line, " ") {
			inSHA = line == "SHA256:"
			continue
		}
		if !inSHA {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return fmt.Errorf("InRelease: bad line %q", line)
		}
		by := filepath.Join(dist, filepath.Dir(f[2]), "by-hash", "SHA256", f[0])
		sum, n, err := sha256File(by)
		if err != nil {
			return err
		}
		if sum != f[0] || strconv.FormatInt(n, 10) != f[1] {
			return fmt.Errorf("%s: checksum or size differs", by)
		}
		if strings.HasSuffix(f[2], "/Packages") {
			indices = append(indices, by)
		}
	}
	if len(indices) == 0 {
		return errors.New("InRelease lists no Packages")
	}
	for _, idx := range indices {
		data, err := os.ReadFile(idx)
		if err != nil {
			return err
		}
		var name, size, sum string
		check := func() error {
			if name == "" {
				return nil
			}
			got, n, err := sha256File(filepath.Join(dir, name))
			if err != nil {
				return err
			}
			if got != sum || strconv.FormatInt(n, 10) != size {
				return fmt.Errorf("%s: differs from its index", name)
			}
			name = ""
			return nil
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ": ")
			switch k {
			case "":
				if err := check(); err != nil {
					return err
				}
			case "Filename":
				name = v
			case "Size":
				size = v
			case "SHA256":
				sum = v
			}
		}
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

type viewRepomd struct {
	Data []struct {
		Type     string `xml:"type,attr"`
		Checksum string `xml:"checksum"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"data"`
}

type viewPrimary struct {
	Packages []struct {
		Checksum string `xml:"checksum"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"package"`
}

func rpmView(dir string, kr openpgp.EntityList) error {
	var md []byte
	var sigErr error
	for range 100 {
		var err error
		if md, err = os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml")); err != nil {
			return err
		}
		asc, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml.asc"))
		if err != nil {
			return err
		}
		_, sigErr = openpgp.CheckArmoredDetachedSignature(kr, bytes.NewReader(md), bytes.NewReader(asc), nil)
		if sigErr == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if sigErr != nil {
		return fmt.Errorf("repomd.xml.asc: %w", sigErr)
	}
	var doc viewRepomd
	if err := xml.Unmarshal(md, &doc); err != nil {
		return err
	}
	var primary string
	for _, d := range doc.Data {
		p := filepath.Join(dir, d.Location.Href)
		sum, _, err := sha256File(p)
		if err != nil {
			return err
		}
		if sum != strings.TrimSpace(d.Checksum) {
			return fmt.Errorf("%s: checksum differs from repomd.xml", d.Location.Href)
		}
		if d.Type == "primary" {
			primary = p
		}
	}
	f, err := os.Open(primary)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	var pr viewPrimary
	if err := xml.NewDecoder(zr).Decode(&pr); err != nil {
		return err
	}
	if len(pr.Packages) == 0 {
		return errors.New("primary lists no packages")
	}
	for _, p := range pr.Packages {
		sum, _, err := sha256File(filepath.Join(dir, p.Location.Href))
		if err != nil {
			return err
		}
		if sum != strings.TrimSpace(p.Checksum) {
			return fmt.Errorf("%s: checksum differs from primary", p.Location.Href)
		}
	}
	return nil
}
