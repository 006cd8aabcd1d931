package repo

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	rpmutils "github.com/sassoftware/go-rpmutils"
)

// RPM writes a signed yum/dnf repository under a root directory: the
// packages, each signed with the repository's key, under Packages/, and
// repodata/ in createrepo_c's layout with a detached signature of
// repomd.xml (repomd.xml.asc, checked by dnf's repo_gpgcheck).
type RPM struct {
	root string
	key  *Key
	log  *slog.Logger
	now  func() time.Time
}

// NewRPM returns the RPM repository at root, signed with key.
func NewRPM(root string, key *Key, log *slog.Logger) *RPM {
	return &RPM{root: root, key: key, log: log, now: time.Now}
}

// Publish signs the .rpm files in paths (files or directories) into the
// repository and writes its new metadata.
//
// repomd.xml and repomd.xml.asc are two files, and no rename switches both
// at once: both are written and synced under temporary names, then the
// signature is renamed into place and repomd.xml right after it, so a
// client that fetches repomd.xml and then its signature almost always gets
// a matching pair. A client that gets a pair that does not match must
// fetch both again before it concludes anything (dnf fails that attempt
// and fetches them again on the next; verify re-reads them holding the
// publish lock); it never sees a repomd.xml that names a missing file,
// since every file it names is written before it and kept for a few
// generations after.
func (r *RPM) Publish(ctx context.Context, paths []string, opts PublishOptions) (Summary, error) {
	return publish(ctx, r.root, rpmFormat{r}, paths, opts, r.log)
}

type rpmFormat struct{ *RPM }

var _ format = rpmFormat{}

func (rpmFormat) name() string  { return "rpm" }
func (rpmFormat) scope() string { return "" }
func (rpmFormat) ext() string   { return ".rpm" }

func (rpmFormat) parse(f io.ReaderAt, size int64) (entry, error) {
	m, err := parseRPM(f, size)
	if err != nil {
		return entry{}, err
	}
	return entry{RPM: m}, nil
}

func (rpmFormat) identity(e *entry) string { return e.RPM.key() }

func (rpmFormat) poolPath(e *entry) string { return e.RPM.poolPath() }

// store signs the package into the pool: a new signature header (header
// and header+payload OpenPGP signatures, tags 268 and 1002) in front of
// the package's own header and payload. The signature header changes size,
// so the entry's size, checksum and header range are those of the signed
// file.
func (f rpmFormat) store(ctx context.Context, src pkgFile, e entry) (entry, error) {
	var in io.ReaderAt = bytes.NewReader(src.data)
	if src.data == nil {
		fh, err := os.Open(src.path)
		if err != nil {
			return e, err
		}
		defer fh.Close()
		in = fh
	}
	now := f.now()
	sigHeader, origLen, err := signRPM(ctx, io.NewSectionReader(in, 0, e.Size), f.key, now)
	if err != nil {
		return e, err
	}
	if origLen != e.RPM.HeaderStart {
		return e, fmt.Errorf("%s changed while it was published", src.path)
	}
	var out input
	err = createFile(f.root, e.Pool, func(w io.Writer) error {
		// Copy the header and payload after the new signature header. They
		// are what was checked: parseRPM verified the header's digest and
		// signing verified the payload's, so a file changed since it was
		// hashed is caught there or by its size here.
		outHash := sha256.New()
		ow := io.MultiWriter(w, outHash)
		if _, err := ow.Write(sigHeader); err != nil {
			return err
		}
		buf := make([]byte, 256<<10)
		n, err := io.CopyBuffer(ow, ctxReader{ctx, io.NewSectionReader(in, origLen, e.Size-origLen+1)}, buf)
		if err != nil {
			return err
		}
		if n != e.Size-origLen {
			return fmt.Errorf("%s changed while it was published", src.path)
		}
		out = input{Size: int64(len(sigHeader)) + n, SHA256: hex.EncodeToString(outHash.Sum(nil))}
		return nil
	})
	if err != nil {
		return e, err
	}
	m := *e.RPM // the parsed metadata is shared with the cache: copy it
	shift := int64(len(sigHeader)) - origLen
	m.HeaderStart += shift
	m.HeaderEnd += shift
	m.FileTime = now.Unix()
	e.RPM = &m
	e.Size, e.SHA256 = out.Size, out.SHA256
	return e, nil
}

// signRPM signs the RPM read from r with key and returns the lead and new
// signature header that replace the first origLen bytes of the file.
func signRPM(ctx context.Context, r io.Reader, key *Key, now time.Time) (sigHeader []byte, origLen int64, err error) {
	defer func() {
		// go-rpmutils trusts the offsets in the headers; parseRPM checked
		// them, but the file may have changed since.
		if p := recover(); p != nil {
			err = fmt.Errorf("sign: corrupt .rpm: %v", p)
		}
	}()
	// A SignatureOptions without Hash panics; CreationTime makes the
	// signature reproducible.
	h, err := rpmutils.SignRpmStream(ctxReader{ctx, r}, key.signer, &rpmutils.SignatureOptions{
		Hash:         crypto.SHA256,
		CreationTime: now.UTC().Truncate(time.Second),
	})
	if err != nil {
		return nil, 0, fmt.Errorf("sign: %w", err)
	}
	// sameSize keeps the file's layout when the package reserved room for
	// signatures (rpmbuild does), and otherwise takes what it needs.
	blob, err := h.DumpSignatureHeader(true)
	if err != nil {
		return nil, 0, fmt.Errorf("sign: %w", err)
	}
	return blob, int64(h.OriginalSignatureHeaderSize()), nil
}

// ctxReader stops a long copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// repodataKinds are the metadata files, in repomd.xml's order.
var repodataKinds = []struct {
	kind  string
	build func([]entry) []byte
}{
	{"primary", primaryXML},
	{"filelists", filelistsXML},
	{"other", otherXML},
}

// index writes repodata: the checksum-named XML files first, then the
// public key, repomd.xml.asc and repomd.xml.
func (f rpmFormat) index(ctx context.Context, st *state) ([]string, error) {
	now := f.now()
	files := make([]repodataFile, len(repodataKinds))
	errs := make([]error, len(repodataKinds))
	var wg sync.WaitGroup
	for i, k := range repodataKinds {
		wg.Go(func() {
			files[i], errs[i] = newRepodataFile(k.kind, k.build(st.Packages))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("write repodata: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	meta := make([]string, 0, len(files))
	addressed := make([]stagedFile, 0, len(files))
	for i := range files {
		name := files[i].href()
		addressed = append(addressed, stagedFile{name, files[i].gz})
		meta = append(meta, name)
	}
	repomd := repomdXML(now, files)
	var asc, pub bytes.Buffer
	if err := f.key.DetachSign(&asc, bytes.NewReader(repomd)); err != nil {
		return nil, fmt.Errorf("sign repomd.xml: %w", err)
	}
	if err := f.key.WritePublic(&pub); err != nil {
		return nil, err
	}
	// repomd.xml.asc goes just before repomd.xml: the two cannot be
	// switched together, and back to back the moment they are apart is as
	// short as it can be.
	err := commit(f.root, addressed, []stagedFile{
		{PublicKeyFile, pub.Bytes()},
		{"repodata/repomd.xml.asc", asc.Bytes()},
		{"repodata/repomd.xml", repomd},
	})
	if err != nil {
		return nil, err
	}
	return meta, nil
}
