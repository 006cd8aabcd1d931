package zuul

import (
	"context"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// MergeCommits is the local source's submit for a change the branch moved
// under: it merges theirs into ours in repo with the Merger's three-way
// merge (git's resolve strategy, the one the change was tested with), as
// Gerrit's merge-if-necessary does, and returns the merge commit, by the
// Merger's identity at the current time. A conflict wraps
// ErrNotSubmittable.
func MergeCommits(ctx context.Context, repo *git.Repository, ours, theirs plumbing.Hash, message string) (plumbing.Hash, error) {
	sto := repo.Storer
	cur, err := object.GetCommit(sto, ours)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("merge: %s: %w", ours, err)
	}
	c, err := object.GetCommit(sto, theirs)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("merge: %s: %w", theirs, err)
	}
	bases, err := mergeBases(ctx, sto, cur, c)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("merge base: %w", err)
	}
	if len(bases) == 0 {
		return plumbing.ZeroHash, fmt.Errorf("%w: %s shares no history with %s", ErrNotSubmittable, theirs, ours)
	}
	for _, b := range bases {
		switch b.Hash {
		case c.Hash:
			return cur.Hash, nil // merged already
		case cur.Hash:
			return c.Hash, nil // a fast-forward
		}
	}
	trees := make([]*object.Tree, len(bases))
	for i, b := range bases {
		if trees[i], err = b.Tree(); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	ourTree, err := cur.Tree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	theirTree, err := c.Tree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tree, conflicts, err := mergeTrees(ctx, sto, newCanonCache(), trees, ourTree, theirTree)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if conflicts != nil {
		paths := make([]string, 0, len(conflicts))
		for _, pc := range conflicts {
			paths = append(paths, pc.Path)
		}
		return plumbing.ZeroHash, fmt.Errorf("%w: merge conflict in %v", ErrNotSubmittable, paths)
	}
	sig := object.Signature{Name: MergerName, Email: MergerEmail, When: time.Now().UTC().Truncate(time.Second)}
	mc := &object.Commit{Author: sig, Committer: sig, Message: message, TreeHash: tree,
		ParentHashes: []plumbing.Hash{cur.Hash, c.Hash}}
	o := sto.NewEncodedObject()
	if err := mc.Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return sto.SetEncodedObject(o)
}
