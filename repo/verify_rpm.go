package repo

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	rpmutils "github.com/sassoftware/go-rpmutils"
)

// verifyRPM checks the yum repository at root as a client with keyring
// would: repomd.xml.asc signs repomd.xml; every file repomd.xml names has
// its size and checksum, and its open-checksum once decompressed; every
// package primary.xml names has its size and checksum and carries a valid
// header signature by a key of keyring. It reports every problem.
//
// repomd.xml and repomd.xml.asc are two files that no rename switches
// together, so a reader can find them apart while a publish runs. With
// asClient, verifyRPM does what a client does then: it fetches both again,
// a bounded number of times. Without, it waits for the publish to end (by
// taking the publish lock shared) and reads them once more.
func verifyRPM(ctx context.Context, root string, keyring openpgp.EntityList, asClient bool) (probs []Problem) {
	bad := func(path string, err error) { probs = append(probs, Problem{Path: path, Err: err}) }
	r, err := os.OpenRoot(root)
	if err != nil {
		bad(".", err)
		return probs
	}
	defer r.Close()
	const repomdName = "repodata/repomd.xml"
	repomd, sigErr, err := readRepomd(r, keyring)
	switch {
	case sigErr == nil:
	case asClient:
		for i := 0; i < 100 && sigErr != nil && ctx.Err() == nil; i++ {
			time.Sleep(time.Millisecond)
			repomd, sigErr, err = readRepomd(r, keyring)
		}
	default:
		waitForPublish(ctx, r, func() { repomd, sigErr, err = readRepomd(r, keyring) })
	}
	if err != nil {
		bad(repomdName, err)
		return probs
	}
	if sigErr != nil {
		bad(repomdName+".asc", sigErr)
	}
	var md repomdDoc
	if err := xml.Unmarshal(repomd, &md); err != nil {
		bad(repomdName, err)
		return probs
	}
	var packages []primaryPackage
	sawPrimary := false
	for _, d := range md.Data {
		if err := ctx.Err(); err != nil {
			bad(repomdName, err)
			return probs
		}
		href := d.Location.Href
		if !safeRelPath(href) || d.Location.Base != "" {
			bad(repomdName, fmt.Errorf("%s: location %q is not a file of this repository", d.Type, href))
			continue
		}
		var pkgs *[]primaryPackage
		if d.Type == "primary" {
			sawPrimary = true
			pkgs = &packages
		}
		if err := checkRepodataFile(r, d, pkgs); err != nil {
			bad(href, err)
		}
	}
	if !sawPrimary {
		bad(repomdName, errors.New("no primary data"))
	}
	return append(probs, verifyRPMPackages(ctx, r, packages, keyring)...)
}

// readRepomd reads repomd.xml and checks repomd.xml.asc against it; err is
// for a repomd.xml that cannot be read, sigErr for a signature that cannot
// be read or does not match.
func readRepomd(r *os.Root, keyring openpgp.EntityList) (repomd []byte, sigErr, err error) {
	repomd, err = readLimited(r, "repodata/repomd.xml")
	if err != nil {
		return nil, nil, err
	}
	asc, err := readLimited(r, "repodata/repomd.xml.asc")
	if err != nil {
		return repomd, err, nil
	}
	if _, err := openpgp.CheckArmoredDetachedSignature(keyring, bytes.NewReader(repomd), bytes.NewReader(asc), nil); err != nil {
		return repomd, fmt.Errorf("signature of repomd.xml: %w", err), nil
	}
	return repomd, nil, nil
}

// waitForPublish runs read while no publish is writing the repository, by
// holding its lock shared; without a lock file or once ctx is done it
// does not run read. A publish renames
// repomd.xml.asc just before repomd.xml, and no rename switches the two
// together: a reader can find the new signature beside the old repomd.xml
// for a moment, and must read both again (clients fetch them again). A
// mismatch that stays when no publish runs is real.
func waitForPublish(ctx context.Context, r *os.Root, read func()) {
	f, err := r.Open(stateDir + "/lock")
	if err != nil {
		return // not published here, or by another tool
	}
	defer f.Close()
	fd := int(f.Fd())
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		err := syscall.Flock(fd, syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	defer syscall.Flock(fd, syscall.LOCK_UN)
	read()
}

// checkRepodataFile checks one file that repomd.xml names, reading it once;
// when pkgs is not nil it is primary.xml and its packages go there.
func checkRepodataFile(r *os.Root, d repomdData, pkgs *[]primaryPackage) error {
	f, err := r.Open(d.Location.Href)
	if err != nil {
		return err
	}
	defer f.Close()
	sumOf := func(c xmlChecksum) (hash.Hash, error) {
		if c.Type != "sha256" {
			return nil, fmt.Errorf("checksum type %q (only sha256 is checked)", c.Type)
		}
		return sha256.New(), nil
	}
	fileHash, err := sumOf(d.Checksum)
	if err != nil {
		return err
	}
	counted := new(countWriter)
	src := io.TeeReader(bufio.NewReaderSize(f, 1<<16), io.MultiWriter(fileHash, counted))
	var openHash hash.Hash
	var openCount countWriter
	if d.OpenChecksum != nil || pkgs != nil {
		if !strings.HasSuffix(d.Location.Href, ".gz") {
			return errors.New("not a .gz file")
		}
		zr, err := gzip.NewReader(src)
		if err != nil {
			return fmt.Errorf("decompress: %w", err)
		}
		var plain io.Reader = zr
		if d.OpenChecksum != nil {
			if openHash, err = sumOf(*d.OpenChecksum); err != nil {
				return err
			}
			plain = io.TeeReader(zr, io.MultiWriter(openHash, &openCount))
		}
		if pkgs != nil {
			if err := decodePrimary(plain, pkgs); err != nil {
				return fmt.Errorf("primary.xml: %w", err)
			}
		}
		if _, err := io.Copy(io.Discard, plain); err != nil {
			return fmt.Errorf("decompress: %w", err)
		}
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return err
	}
	if int64(*counted) != d.Size {
		return fmt.Errorf("size %d, repomd.xml says %d", *counted, d.Size)
	}
	if got := hex.EncodeToString(fileHash.Sum(nil)); got != d.Checksum.Value {
		return fmt.Errorf("sha256 %s, repomd.xml says %s", got, d.Checksum.Value)
	}
	if openHash != nil {
		if d.OpenSize != nil && int64(openCount) != *d.OpenSize {
			return fmt.Errorf("decompressed size %d, repomd.xml says %d", openCount, *d.OpenSize)
		}
		if got := hex.EncodeToString(openHash.Sum(nil)); got != d.OpenChecksum.Value {
			return fmt.Errorf("decompressed sha256 %s, repomd.xml says %s", got, d.OpenChecksum.Value)
		}
	}
	return nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// decodePrimary reads the packages of primary.xml one at a time.
func decodePrimary(r io.Reader, pkgs *[]primaryPackage) error {
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "package" {
			var p primaryPackage
			if err := dec.DecodeElement(&p, &se); err != nil {
				return err
			}
			*pkgs = append(*pkgs, p)
		}
	}
}

// verifyRPMPackages checks the packages on every core.
func verifyRPMPackages(ctx context.Context, r *os.Root, pkgs []primaryPackage, keyring openpgp.EntityList) []Problem {
	errs := make([]error, len(pkgs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(pkgs)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = verifyRPMPackage(r, &pkgs[i], keyring)
			}
		})
	}
	var probs []Problem
feed:
	for i := range pkgs {
		select {
		case next <- i:
		case <-ctx.Done():
			probs = append(probs, Problem{Path: "repodata/repomd.xml", Err: ctx.Err()})
			break feed
		}
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			probs = append(probs, Problem{Path: pkgs[i].Location.Href, Err: err})
		}
	}
	return probs
}

// verifyRPMPackage reads a package once: its size, its checksum, its
// digests and its OpenPGP signatures.
func verifyRPMPackage(r *os.Root, p *primaryPackage, keyring openpgp.EntityList) (err error) {
	href := p.Location.Href
	if !safeRelPath(href) || p.Location.Base != "" {
		return fmt.Errorf("package %s: location %q is not a file of this repository", p.Name, href)
	}
	if p.Checksum.Type != "sha256" {
		return fmt.Errorf("checksum type %q (only sha256 is checked)", p.Checksum.Type)
	}
	f, err := r.Open(href)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	// Check the headers' structure before go-rpmutils reads them: it
	// believes the sizes they claim.
	if _, _, err := readRPMHeaders(f, fi.Size()); err != nil {
		return err
	}
	h := sha256.New()
	var n countWriter
	src := io.TeeReader(bufio.NewReaderSize(f, 1<<16), io.MultiWriter(h, &n))
	sigErr := verifyRPMSignature(src, keyring)
	if _, err := io.Copy(io.Discard, src); err != nil {
		return err
	}
	var errs []error
	if int64(n) != p.Size.Package {
		errs = append(errs, fmt.Errorf("size %d, primary.xml says %d", n, p.Size.Package))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.Checksum.Value {
		errs = append(errs, fmt.Errorf("sha256 %s, primary.xml says %s", got, p.Checksum.Value))
	}
	if sigErr != nil {
		errs = append(errs, sigErr)
	}
	return errors.Join(errs...)
}

// verifyRPMSignature checks the package's digests and every OpenPGP
// signature in it against keyring, and that there is a header signature
// (what rpm checks first; dnf's gpgcheck needs it).
func verifyRPMSignature(r io.Reader, keyring openpgp.EntityList) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("signature: corrupt .rpm: %v", p)
		}
	}()
	_, sigs, err := rpmutils.Verify(r, keyring)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	for _, s := range sigs {
		if s.HeaderOnly {
			return nil
		}
	}
	return errors.New("signature: no header signature")
}
