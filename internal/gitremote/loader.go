// Package gitremote fetches from git repositories with go-git: remote URLs
// validated (file, https, ssh; no credentials in them), upload-pack
// sessions (go-git's in-process server for a local repository, so no git
// binary runs), one pack per fetch, tags peeled to commits.
//
// A local repository is served while other programs write to it. go-git
// lists a repository's refs by reading every file under refs/. Real git
// updates a ref by writing refs/X.lock and renaming it over refs/X, and
// go-git itself truncates a ref file before it writes the new value; a
// listing that meets either reads an empty file and fails with "ref file
// is empty". Loader hides lock files (no ref name may end in ".lock":
// git-check-ref-format(1)) and lists again when it meets an empty ref
// file.
package gitremote

import (
	"errors"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"
)

// listAttempts bounds how often a listing is retried; a ref being written
// is empty for microseconds.
const (
	listAttempts = 50
	listPause    = 10 * time.Millisecond
)

// Loader is a server.Loader that serves one repository whatever the
// endpoint.
type Loader struct{ Storage *filesystem.Storage }

// Load implements server.Loader.
func (l Loader) Load(*transport.Endpoint) (storer.Storer, error) {
	return refStorer{l.Storage}, nil
}

// refStorer embeds the storage itself so that the server still finds
// what it type-asserts for (delta reuse, packfiles).
type refStorer struct{ *filesystem.Storage }

// IterReferences lists the refs, without lock files, again while a ref
// file is being written.
func (s refStorer) IterReferences() (storer.ReferenceIter, error) {
	var err error
	for range listAttempts {
		var it storer.ReferenceIter
		if it, err = s.Storage.IterReferences(); err != nil {
			if errors.Is(err, dotgit.ErrEmptyRefFile) {
				time.Sleep(listPause)
				continue
			}
			return nil, err
		}
		var refs []*plumbing.Reference
		err = it.ForEach(func(r *plumbing.Reference) error {
			if !strings.HasSuffix(r.Name().String(), ".lock") {
				refs = append(refs, r)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return storer.NewReferenceSliceIter(refs), nil
	}
	return nil, err
}

// Reference reads one ref, again while its file is being written.
func (s refStorer) Reference(n plumbing.ReferenceName) (*plumbing.Reference, error) {
	var err error
	for range listAttempts {
		var r *plumbing.Reference
		if r, err = s.Storage.Reference(n); !errors.Is(err, dotgit.ErrEmptyRefFile) {
			return r, err
		}
		time.Sleep(listPause)
	}
	return nil, err
}
