package zuul

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/sluice-ci/sluice/internal/gitremote"
)

// ErrMergeRefNotFound reports that a project's remote does not have a ref
// a merge needs (its branch, or a change's ref).
var ErrMergeRefNotFound = errors.New("zuul: merge: ref not found")

// fetchRefs asks the remote for the full ref names refs, fetches the
// objects of those the cache lacks as one pack, and records each ref in the
// cache under its own name (+R:R). It returns what each ref points at.
func fetchRefs(ctx context.Context, sto *filesystem.Storage, rem *gitremote.Remote, refs []string) (map[string]plumbing.Hash, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	up, err := rem.Open(filesystem.Options{})
	if err != nil {
		return nil, err
	}
	defer up.Close()
	ar, err := up.AdvertisedReferences(ctx)
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
		if _, _, err := up.Fetch(ctx, sto, ar, wants); err != nil {
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
