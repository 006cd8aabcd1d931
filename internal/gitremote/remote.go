package gitremote

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Remote is a validated repository URL.
type Remote struct {
	URL      string
	Endpoint *transport.Endpoint
	Path     string // a local repository's directory; empty otherwise
}

// ParseURL validates raw: an absolute path, file:///absolute/path,
// https:// or ssh://, with no credentials in it.
func ParseURL(raw string) (*Remote, error) {
	switch {
	case strings.HasPrefix(raw, "/"):
		p := filepath.Clean(raw)
		return &Remote{URL: raw, Path: p, Endpoint: &transport.Endpoint{Protocol: "file", Path: p}}, nil
	case strings.HasPrefix(raw, "file://"):
		u, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, errors.New("a file URL names no host")
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" || !filepath.IsAbs(u.Path) {
			return nil, errors.New("a file URL is file:///absolute/path")
		}
		p := filepath.Clean(u.Path)
		return &Remote{URL: raw, Path: p, Endpoint: &transport.Endpoint{Protocol: "file", Path: p}}, nil
	case strings.HasPrefix(raw, "https://"), strings.HasPrefix(raw, "ssh://"):
		ep, err := transport.NewEndpoint(raw)
		if err != nil {
			return nil, err
		}
		if ep.Password != "" || (ep.Protocol == "https" && ep.User != "") {
			return nil, errors.New("credentials in the URL are not accepted")
		}
		if ep.Host == "" {
			return nil, errors.New("no host")
		}
		return &Remote{URL: raw, Endpoint: ep}, nil
	}
	return nil, errors.New("want a file://, https:// or ssh:// URL, or an absolute path")
}

// Redact hides a password in raw, for messages.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

// Session is one upload-pack session with a remote: it serves one pack.
type Session struct {
	sess transport.UploadPackSession
	// Local is true for a repository on this machine, served in process.
	Local bool
	// has tells whether a local remote has an object; nil for others.
	has   func(plumbing.Hash) bool
	close func()
}

// Open starts an upload-pack session. No credentials are given: https is
// anonymous, and ssh uses go-git's default (the ssh agent). A local
// repository is opened with opts.
func (r *Remote) Open(opts filesystem.Options) (*Session, error) {
	switch r.Endpoint.Protocol {
	case "https":
		sess, err := githttp.DefaultClient.NewUploadPackSession(r.Endpoint, nil)
		if err != nil {
			return nil, err
		}
		return &Session{sess: sess, close: func() { sess.Close() }}, nil
	case "ssh":
		sess, err := gitssh.DefaultClient.NewUploadPackSession(r.Endpoint, nil)
		if err != nil {
			return nil, err
		}
		return &Session{sess: sess, close: func() { sess.Close() }}, nil
	}
	// go-git's file transport runs git-upload-pack; its server package
	// serves the same protocol in process.
	gitDir, err := LocalGitDir(r.Path)
	if err != nil {
		return nil, err
	}
	sto := filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRUDefault(), opts)
	sess, err := server.NewClient(Loader{Storage: sto}).NewUploadPackSession(r.Endpoint, nil)
	if err != nil {
		sto.Close()
		return nil, err
	}
	return &Session{
		sess:  sess,
		Local: true,
		has:   func(h plumbing.Hash) bool { return sto.HasEncodedObject(h) == nil },
		close: func() { sess.Close(); sto.Close() },
	}, nil
}

// Close ends the session.
func (s *Session) Close() { s.close() }

// AdvertisedReferences reads what the remote advertises.
func (s *Session) AdvertisedReferences(ctx context.Context) (*packp.AdvRefs, error) {
	return s.sess.AdvertisedReferencesContext(ctx)
}

// Fetch asks for the objects reachable from wants and not from the refs
// of sto, as one pack, and stores it in sto. It returns the number of
// objects in the pack and of haves sent.
func (s *Session) Fetch(ctx context.Context, sto *filesystem.Storage, ar *packp.AdvRefs, wants []plumbing.Hash) (objects, haves int, err error) {
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	// go-git indexes a received pack without looking into the cache, so
	// it cannot resolve the deltas of a thin pack.
	req.Capabilities.Delete(capability.ThinPack)
	if ar.Capabilities.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return 0, 0, err
		}
	}
	req.Wants = wants
	if req.Haves, err = s.haves(sto); err != nil {
		return 0, 0, err
	}
	resp, err := s.sess.UploadPack(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Close()
	var r io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		r = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		r = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	hr := &packHeader{r: r}
	if err := packfile.UpdateObjectStorage(sto, hr); err != nil {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		return 0, 0, err
	}
	return hr.objects(), len(req.Haves), nil
}

// haves lists the tips of sto's refs. A git server ignores the ones it
// does not know; go-git's in-process one fails on them, so for a local
// remote only those it has are sent.
func (s *Session) haves(sto *filesystem.Storage) ([]plumbing.Hash, error) {
	iter, err := sto.IterReferences()
	if err != nil {
		return nil, err
	}
	seen := make(map[plumbing.Hash]bool)
	var haves []plumbing.Hash
	err = iter.ForEach(func(r *plumbing.Reference) error {
		h := r.Hash()
		if r.Type() != plumbing.HashReference || seen[h] || sto.HasEncodedObject(h) != nil {
			return nil
		}
		seen[h] = true
		if s.has == nil || s.has(h) {
			haves = append(haves, h)
		}
		return nil
	})
	return haves, err
}

// packHeader passes a pack through and keeps its 12-byte header, which
// holds the number of objects.
type packHeader struct {
	r   io.Reader
	hdr [12]byte
	n   int
}

func (p *packHeader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.n < len(p.hdr) {
		p.n += copy(p.hdr[p.n:], b[:n])
	}
	return n, err
}

func (p *packHeader) objects() int {
	if p.n < len(p.hdr) || string(p.hdr[:4]) != "PACK" {
		return 0
	}
	return int(binary.BigEndian.Uint32(p.hdr[8:]))
}

// LocalGitDir finds the git directory of the repository at p: p/.git, p
// itself when bare, or p.git as git itself tries.
func LocalGitDir(p string) (string, error) {
	if fi, err := os.Stat(filepath.Join(p, ".git")); err == nil && fi.IsDir() {
		return filepath.Join(p, ".git"), nil
	}
	for _, d := range []string{p, p + ".git"} {
		if IsBare(d) {
			return d, nil
		}
	}
	return "", transport.ErrRepositoryNotFound
}

// IsBare tells whether d looks like a bare repository.
func IsBare(d string) bool {
	for _, n := range []string{"HEAD", "objects", "refs"} {
		if _, err := os.Stat(filepath.Join(d, n)); err != nil {
			return false
		}
	}
	return true
}

// PeelCommit follows annotated tags from h down to a commit.
func PeelCommit(sto storer.EncodedObjectStorer, h plumbing.Hash) (*object.Commit, error) {
	for range 16 {
		o, err := sto.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, err
		}
		switch o.Type() {
		case plumbing.CommitObject:
			return object.DecodeCommit(sto, o)
		case plumbing.TagObject:
			t, err := object.DecodeTag(sto, o)
			if err != nil {
				return nil, err
			}
			h = t.Target
		default:
			return nil, fmt.Errorf("object %s is a %s, not a commit", h, o.Type())
		}
	}
	return nil, fmt.Errorf("object %s: tags nested too deep", h)
}
