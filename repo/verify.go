package repo

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ulikunitz/xz"
	"pault.ag/go/debian/control"
)

// Problem is one thing wrong with a published repository.
type Problem struct {
	Path string // relative to the repository root
	Err  error
}

func (p Problem) String() string { return p.Path + ": " + p.Err.Error() }

// maxIndexSize bounds the metadata files verify reads into memory.
const maxIndexSize = 1 << 30

// Verify checks a published repository at root against keyring: the
// signatures of its metadata, and that every file the metadata names exists
// with its size and checksums (for RPM repositories, also each package's
// own signature). It returns every problem it finds; err is for a root that
// cannot be read at all or holds no repository.
func Verify(ctx context.Context, root string, keyring openpgp.EntityList) ([]Problem, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer r.Close()
	var probs []Problem
	found := false
	if dists, err := fs.ReadDir(r.FS(), "dists"); err == nil {
		for _, d := range dists {
			if d.IsDir() {
				found = true
				probs = append(probs, verifyAPT(ctx, r, "dists/"+d.Name(), keyring, false)...)
			}
		}
	}
	if _, err := r.Stat("repodata/repomd.xml"); err == nil {
		found = true
		probs = append(probs, verifyRPM(ctx, root, keyring, false)...)
	}
	if !found {
		return nil, fmt.Errorf("verify %s: no APT (dists/*) or RPM (repodata/repomd.xml) repository found", root)
	}
	return probs, nil
}

// verifyAPT checks one APT distribution directory.
//
// With asClient it reads what apt reads and nothing else: InRelease, then
// each index by hash. A repository being published must look consistent
// that way at every moment; the plain index names and the Release and
// Release.gpg pair are switched one file at a time and cannot be.
func verifyAPT(ctx context.Context, r *os.Root, dist string, keyring openpgp.EntityList, asClient bool) (probs []Problem) {
	bad := func(path string, err error) { probs = append(probs, Problem{Path: path, Err: err}) }
	inRelease, err := readLimited(r, dist+"/InRelease")
	if err != nil {
		bad(dist+"/InRelease", err)
		return probs
	}
	block, rest := clearsign.Decode(inRelease)
	if block == nil {
		bad(dist+"/InRelease", errors.New("not a clearsigned message"))
		return probs
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		bad(dist+"/InRelease", errors.New("data after the signed message"))
	}
	if _, err := block.VerifySignature(keyring, nil); err != nil {
		bad(dist+"/InRelease", fmt.Errorf("signature: %w", err))
		return probs
	}
	release := block.Plaintext
	if asClient {
		// nothing else to compare
	} else if plain, err := readLimited(r, dist+"/Release"); err != nil {
		bad(dist+"/Release", err)
	} else {
		if !bytes.Equal(bytes.TrimRight(plain, "\n"), bytes.TrimRight(release, "\n")) {
			bad(dist+"/Release", errors.New("differs from the text signed in InRelease"))
		}
		sig, err := readLimited(r, dist+"/Release.gpg")
		if err == nil {
			_, err = openpgp.CheckArmoredDetachedSignature(keyring, bytes.NewReader(plain), bytes.NewReader(sig), nil)
		}
		if err != nil {
			bad(dist+"/Release.gpg", fmt.Errorf("signature: %w", err))
		}
	}
	rel, err := parseRelease(release)
	if err != nil {
		bad(dist+"/InRelease", err)
		return probs
	}
	if rel.validUntil != nil && time.Now().After(*rel.validUntil) {
		bad(dist+"/InRelease", fmt.Errorf("expired: Valid-Until %s", rel.validUntil.Format(time.RFC1123Z)))
	}
	if time.Until(rel.date) > 10*time.Second {
		bad(dist+"/InRelease", fmt.Errorf("Date %s is in the future (apt refuses that)", rel.date.Format(time.RFC1123Z)))
	}
	for _, f := range rel.files {
		if ctx.Err() != nil {
			return append(probs, Problem{Path: dist, Err: ctx.Err()})
		}
		name := dist + "/" + f.name
		if asClient && rel.byHash && f.sha256 != "" {
			name = dist + "/" + pathDir(f.name) + "/by-hash/SHA256/" + f.sha256
		}
		data, err := readLimited(r, name)
		if err != nil {
			bad(name, err)
			continue
		}
		if err := f.check(data); err != nil {
			bad(name, err)
			continue
		}
		if rel.byHash && !asClient {
			for algo, sum := range map[string]string{"SHA256": f.sha256, "MD5Sum": f.md5} {
				if sum == "" {
					continue
				}
				bh := dist + "/" + pathDir(f.name) + "/by-hash/" + algo + "/" + sum
				if got, err := readLimited(r, bh); err != nil {
					bad(bh, err)
				} else if !bytes.Equal(got, data) {
					bad(bh, errors.New("differs from the index it stands for"))
				}
			}
		}
		if plain, ok := strings.CutSuffix(f.name, ".gz"); ok {
			probs = append(probs, checkCompressed(name, f.name, data, plain, rel)...)
		} else if plain, ok := strings.CutSuffix(f.name, ".xz"); ok {
			probs = append(probs, checkCompressed(name, f.name, data, plain, rel)...)
		}
		if strings.HasSuffix(f.name, "/Packages") {
			probs = append(probs, verifyPackages(ctx, r, name, data)...)
		}
	}
	return probs
}

// checkCompressed checks that a compressed index holds what the Release
// says its uncompressed form holds.
func checkCompressed(name, listed string, data []byte, plain string, rel *release) []Problem {
	out, err := decompress(listed, data)
	if err != nil {
		return []Problem{{name, fmt.Errorf("decompress: %w", err)}}
	}
	for _, f := range rel.files {
		if f.name == plain {
			if err := f.check(out); err != nil {
				return []Problem{{name, fmt.Errorf("decompressed: %w", err)}}
			}
		}
	}
	return nil
}

// releaseFile is one index listed in a Release file.
type releaseFile struct {
	name        string
	size        int64
	sha256, md5 string
}

func (f releaseFile) check(data []byte) error {
	if int64(len(data)) != f.size {
		return fmt.Errorf("size %d, Release says %d", len(data), f.size)
	}
	if f.sha256 != "" {
		if s := sha256.Sum256(data); hex.EncodeToString(s[:]) != f.sha256 {
			return errors.New("SHA256 differs from Release")
		}
	}
	if f.md5 != "" {
		if s := md5.Sum(data); hex.EncodeToString(s[:]) != f.md5 {
			return errors.New("MD5Sum differs from Release")
		}
	}
	return nil
}

type release struct {
	date       time.Time
	validUntil *time.Time
	byHash     bool
	files      []releaseFile
}

// parseRelease reads the fields of a Release file that verify needs.
func parseRelease(data []byte) (*release, error) {
	p, err := control.NewParagraphReader(bytes.NewReader(data), nil)
	if err != nil {
		return nil, fmt.Errorf("Release: %w", err)
	}
	para, err := p.Next()
	if err != nil {
		return nil, fmt.Errorf("Release: %w", err)
	}
	rel := &release{byHash: para.Values["Acquire-By-Hash"] == "yes"}
	if rel.date, err = parseReleaseTime(para.Values["Date"]); err != nil {
		return nil, fmt.Errorf("Release: Date: %w", err)
	}
	if v, ok := para.Values["Valid-Until"]; ok {
		t, err := parseReleaseTime(v)
		if err != nil {
			return nil, fmt.Errorf("Release: Valid-Until: %w", err)
		}
		rel.validUntil = &t
	}
	byName := map[string]*releaseFile{}
	var order []string
	for _, sec := range []string{"SHA256", "MD5Sum"} {
		for line := range strings.SplitSeq(para.Values[sec], "\n") {
			fs := strings.Fields(line)
			if len(fs) == 0 {
				continue
			}
			if len(fs) != 3 {
				return nil, fmt.Errorf("Release: %s: bad line %q", sec, line)
			}
			size, err := strconv.ParseInt(fs[1], 10, 64)
			if err != nil || size < 0 {
				return nil, fmt.Errorf("Release: %s: bad size in %q", sec, line)
			}
			name := fs[2]
			if !safeRelPath(name) {
				return nil, fmt.Errorf("Release: %s: bad file name %q", sec, name)
			}
			f := byName[name]
			if f == nil {
				f = &releaseFile{name: name, size: size}
				byName[name] = f
				order = append(order, name)
			} else if f.size != size {
				return nil, fmt.Errorf("Release: %s: size of %s differs between sections", sec, name)
			}
			if sec == "SHA256" {
				f.sha256 = fs[0]
			} else {
				f.md5 = fs[0]
			}
		}
	}
	if len(order) == 0 {
		return nil, errors.New("Release: no SHA256 or MD5Sum section")
	}
	for _, n := range order {
		rel.files = append(rel.files, *byName[n])
	}
	return rel, nil
}

func parseReleaseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123Z, time.RFC1123, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q", s)
}

// safeRelPath reports whether a name taken from metadata is a clean relative
// path inside the repository.
func safeRelPath(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") {
		return false
	}
	for el := range strings.SplitSeq(name, "/") {
		if el == "" || el == "." || el == ".." || strings.ContainsAny(el, "\x00\\") {
			return false
		}
	}
	return true
}

// verifyPackages checks that every package a Packages index names exists
// with its size and checksums.
func verifyPackages(ctx context.Context, r *os.Root, index string, data []byte) (probs []Problem) {
	p, err := control.NewParagraphReader(bytes.NewReader(data), nil)
	if err != nil {
		return []Problem{{index, err}}
	}
	for {
		para, err := p.Next()
		if err == io.EOF {
			return probs
		}
		if err != nil {
			return append(probs, Problem{index, err})
		}
		if ctx.Err() != nil {
			return append(probs, Problem{index, ctx.Err()})
		}
		name := para.Values["Filename"]
		if !safeRelPath(name) {
			probs = append(probs, Problem{index, fmt.Errorf("package %s: bad Filename %q", para.Values["Package"], name)})
			continue
		}
		size, err := strconv.ParseInt(para.Values["Size"], 10, 64)
		if err != nil {
			probs = append(probs, Problem{index, fmt.Errorf("package %s: bad Size %q", para.Values["Package"], para.Values["Size"])})
			continue
		}
		sums := map[string]func() hash.Hash{}
		if para.Values["SHA256"] != "" {
			sums["SHA256"] = sha256.New
		}
		if para.Values["MD5sum"] != "" {
			sums["MD5sum"] = md5.New
		}
		if len(sums) == 0 {
			probs = append(probs, Problem{index, fmt.Errorf("package %s: no SHA256", para.Values["Package"])})
			continue
		}
		if err := checkFile(r, name, size, sums, para.Values); err != nil {
			probs = append(probs, Problem{name, err})
		}
	}
}

// checkFile reads name once and compares its size and the checksums named
// in sums with those in want.
func checkFile(r *os.Root, name string, size int64, sums map[string]func() hash.Hash, want map[string]string) error {
	f, err := r.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	hs := make(map[string]hash.Hash, len(sums))
	ws := make([]io.Writer, 0, len(sums))
	for k, nh := range sums {
		hs[k] = nh()
		ws = append(ws, hs[k])
	}
	n, err := io.Copy(io.MultiWriter(ws...), bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("size %d, index says %d", n, size)
	}
	for k, h := range hs {
		if got := hex.EncodeToString(h.Sum(nil)); got != want[k] {
			return fmt.Errorf("%s %s, index says %s", k, got, want[k])
		}
	}
	return nil
}

func readLimited(r *os.Root, name string) ([]byte, error) {
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIndexSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxIndexSize {
		return nil, fmt.Errorf("larger than %d bytes", maxIndexSize)
	}
	return data, nil
}

// decompress returns the content of a .gz or .xz index (others as they are).
func decompress(name string, data []byte) ([]byte, error) {
	var rd io.Reader
	switch {
	case strings.HasSuffix(name, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		rd = zr
	case strings.HasSuffix(name, ".xz"):
		xr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		rd = xr
	default:
		return data, nil
	}
	out, err := io.ReadAll(io.LimitReader(rd, maxIndexSize+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxIndexSize {
		return nil, fmt.Errorf("larger than %d bytes once decompressed", maxIndexSize)
	}
	return out, nil
}
