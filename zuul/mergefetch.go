package zuul

import (
	"context"
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
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/sluice-ci/sluice/internal/gitserve"
)

// ErrMergeRefNotFound reports that a project's remote does not have a ref
// a merge needs (its branch, or a change's ref).
var ErrMergeRefNotFound = errors.New("zuul: merge: ref not found")

// mergeRemote is a validated repository URL to fetch from.
type mergeRemote struct {
	url  string
	ep   *transport.Endpoint
	path string // a local repository's directory
}

func parseMergeURL(raw string) (*mergeRemote, error) {
	switch {
	case strings.HasPrefix(raw, "/"):
		p := filepath.Clean(raw)
		return &mergeRemote{url: raw, path: p, ep: &transport.Endpoint{Protocol: "file", Path: p}}, nil
	case strings.HasPrefix(raw, "file://"):
		u, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		if (u.Host != "" && u.Host != "localhost") || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !filepath.IsAbs(u.Path) {
			return nil, errors.New("want file:///absolute/path")
		}
		p := filepath.Clean(u.Path)
		return &mergeRemote{url: raw, path: p, ep: &transport.Endpoint{Protocol: "file", Path: p}}, nil
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
		return &mergeRemote{url: raw, ep: ep}, nil
	}
	return nil, errors.New("want a file://, https:// or ssh:// URL, or an absolute path")
}

// mergeSession is one upload-pack session with a remote.
type mergeSession struct {
	sess transport.UploadPackSession
	// has tells whether a local remote has an object; nil for others.
	has   func(plumbing.Hash) bool
	close func()
}

// open starts an upload-pack session: go-git's in-process server for a
// local repository (no git binary runs), its own clients otherwise, with
// no credentials of ours (https anonymous, ssh through the agent).
func (r *mergeRemote) open() (*mergeSession, error) {
	switch r.ep.Protocol {
	case "https":
		sess, err := githttp.DefaultClient.NewUploadPackSession(r.ep, nil)
		if err != nil {
			return nil, err
		}
		return &mergeSession{sess: sess, close: func() { sess.Close() }}, nil
	case "ssh":
		sess, err := gitssh.DefaultClient.NewUploadPackSession(r.ep, nil)
		if err != nil {
			return nil, err
		}
		return &mergeSession{sess: sess, close: func() { sess.Close() }}, nil
	}
	gitDir, err := mergeLocalGitDir(r.path)
	if err != nil {
		return nil, err
	}
	sto := filesystem.NewStorage(osfs.New(gitDir), cache.NewObjectLRUDefault())
	sess, err := server.NewClient(gitserve.Loader{Storage: sto}).NewUploadPackSession(r.ep, nil)
	if err != nil {
		sto.Close()
		return nil, err
	}
	return &mergeSession{
		sess:  sess,
		has:   func(h plumbing.Hash) bool { return sto.HasEncodedObject(h) == nil },
		close: func() { sess.Close(); sto.Close() },
	}, nil
}

// mergeLocalGitDir finds the git directory of the repository at p: p/.git,
// p itself when bare, or p.git as git itself tries.
func mergeLocalGitDir(p string) (string, error) {
	if fi, err := os.Stat(filepath.Join(p, ".git")); err == nil && fi.IsDir() {
		return filepath.Join(p, ".git"), nil
	}
	for _, d := range []string{p, p + ".git"} {
		if isBareDir(d) {
			return d, nil
		}
	}
	return "", transport.ErrRepositoryNotFound
}

func isBareDir(d string) bool {
	for _, n := range []string{"HEAD", "objects", "refs"} {
		if _, err := os.Stat(filepath.Join(d, n)); err != nil {
			return false
		}
	}
	return true
}

// fetchRefs asks the remote for the full ref names refs, fetches the
// objects of those the cache lacks as one pack, and records each ref in the
// cache under its own name (+R:R). It returns what each ref points at.
func fetchRefs(ctx context.Context, sto *filesystem.Storage, rem *mergeRemote, refs []string) (map[string]plumbing.Hash, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	up, err := rem.open()
	if err != nil {
		return nil, err
	}
	defer up.close()
	ar, err := up.sess.AdvertisedReferencesContext(ctx)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return nil, fmt.Errorf("%w: %w", ErrMergeRefNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	got := make(map[string]plumbing.Hash, len(refs))
	var wants []plumbing.Hash
	seen := make(map[plumbing.Hash]bool)
	for _, r := range refs {
		h, ok := ar.References[r]
		if !ok {
			return nil, fmt.Errorf("%w: the remote has no %s", ErrMergeRefNotFound, r)
		}
		got[r] = h
		if !seen[h] && sto.HasEncodedObject(h) != nil {
			wants = append(wants, h)
		}
		seen[h] = true
	}
	if len(wants) > 0 {
		if err := fetchPack(ctx, sto, up, ar, wants); err != nil {
			return nil, err
		}
	}
	for _, r := range refs {
		h := got[r]
		if sto.HasEncodedObject(h) != nil {
			return nil, fmt.Errorf("remote sent no object %s for %s", h, r)
		}
		if err := sto.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(r), h)); err != nil {
			return nil, err
		}
	}
	return got, nil
}

// fetchPack fetches the objects reachable from wants and not from the
// cache's refs, and stores the pack in the cache.
func fetchPack(ctx context.Context, sto *filesystem.Storage, up *mergeSession, ar *packp.AdvRefs, wants []plumbing.Hash) error {
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	// go-git indexes a pack without the cache, so no thin packs.
	req.Capabilities.Delete(capability.ThinPack)
	if ar.Capabilities.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return err
		}
	}
	req.Wants = wants
	iter, err := sto.IterReferences()
	if err != nil {
		return err
	}
	seen := make(map[plumbing.Hash]bool)
	err = iter.ForEach(func(r *plumbing.Reference) error {
		h := r.Hash()
		// go-git's in-process server fails on haves it does not know.
		if r.Type() == plumbing.HashReference && !seen[h] && sto.HasEncodedObject(h) == nil && (up.has == nil || up.has(h)) {
			seen[h] = true
			req.Haves = append(req.Haves, h)
		}
		return nil
	})
	if err != nil {
		return err
	}
	resp, err := up.sess.UploadPack(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Close()
	var r io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		r = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		r = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	if err := packfile.UpdateObjectStorage(sto, r); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}
