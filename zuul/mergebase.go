package zuul

import (
	"container/heap"
	"context"
	"slices"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Flags of the merge-base walk, as git's commit-reach.c names them.
const (
	baseParent1 = 1 << iota
	baseParent2
	baseStale
	baseResult
)

// mergeBases returns the best common ancestors of one and two in git's
// order (`git merge-base --all`): newest committer date first. The order
// matters to a resolve merge with several bases, which takes a path's
// stage-1 entry from the first base that has it. It walks down from both
// commits by date, as git does without a commit-graph, and stops as soon as
// every commit left to visit is below a common ancestor.
func mergeBases(ctx context.Context, sto storer.EncodedObjectStorer, one, two *object.Commit) ([]*object.Commit, error) {
	if one.Hash == two.Hash {
		return []*object.Commit{one}, nil
	}
	w := &baseWalk{sto: sto, flags: make(map[plumbing.Hash]int)}
	w.flags[one.Hash] |= baseParent1
	w.push(one)
	w.flags[two.Hash] |= baseParent2
	w.push(two)

	var found []*object.Commit
	for n := 0; w.hasNonStale(); n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		c := heap.Pop(&w.queue).(baseItem).c
		flags := w.flags[c.Hash] & (baseParent1 | baseParent2 | baseStale)
		if flags == baseParent1|baseParent2 {
			if w.flags[c.Hash]&baseResult == 0 {
				w.flags[c.Hash] |= baseResult
				found = insertByDate(found, c)
			}
			flags |= baseStale
		}
		for _, ph := range c.ParentHashes {
			if w.flags[ph]&flags == flags {
				continue
			}
			p, err := object.GetCommit(sto, ph)
			if err != nil {
				return nil, err
			}
			w.flags[ph] |= flags
			w.push(p)
		}
	}

	var bases []*object.Commit
	for _, c := range found {
		if w.flags[c.Hash]&baseStale == 0 {
			bases = insertByDate(bases, c)
		}
	}
	if len(bases) <= 1 {
		return bases, nil
	}
	// Some of several may be ancestors of others: drop those.
	var keep []*object.Commit
	for i, c := range bases {
		redundant := false
		for j, o := range bases {
			if i == j {
				continue
			}
			anc, err := isAncestor(ctx, sto, c, o)
			if err != nil {
				return nil, err
			}
			if anc {
				redundant = true
				break
			}
		}
		if !redundant {
			keep = append(keep, c)
		}
	}
	var out []*object.Commit
	for _, c := range keep {
		out = insertByDate(out, c)
	}
	return out, nil
}

// insertByDate inserts c into list, kept newest first, after the commits
// of the same date (git's commit_list_insert_by_date).
func insertByDate(list []*object.Commit, c *object.Commit) []*object.Commit {
	i := 0
	for ; i < len(list); i++ {
		if list[i].Committer.When.Unix() < c.Committer.When.Unix() {
			break
		}
	}
	return slices.Insert(list, i, c)
}

// isAncestor tells whether a is reachable from b (a commit is its own
// ancestor).
func isAncestor(ctx context.Context, sto storer.EncodedObjectStorer, a, b *object.Commit) (bool, error) {
	if a.Hash == b.Hash {
		return true, nil
	}
	// Committer dates may be skewed, so no date bounds the walk: it goes
	// through b's history until it meets a. It runs only to drop
	// redundant merge bases, when there are several.
	seen := map[plumbing.Hash]bool{b.Hash: true}
	stack := []plumbing.Hash{b.Hash}
	for n := 0; len(stack) > 0; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
		}
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		c, err := object.GetCommit(sto, h)
		if err != nil {
			return false, err
		}
		for _, p := range c.ParentHashes {
			if p == a.Hash {
				return true, nil
			}
			if !seen[p] {
				seen[p] = true
				stack = append(stack, p)
			}
		}
	}
	return false, nil
}

// baseWalk is the state of one merge-base walk.
type baseWalk struct {
	sto   storer.EncodedObjectStorer
	flags map[plumbing.Hash]int
	queue baseQueue
	ctr   int
}

func (w *baseWalk) push(c *object.Commit) {
	heap.Push(&w.queue, baseItem{c: c, ctr: w.ctr})
	w.ctr++
}

func (w *baseWalk) hasNonStale() bool {
	for _, it := range w.queue {
		if w.flags[it.c.Hash]&baseStale == 0 {
			return true
		}
	}
	return false
}

type baseItem struct {
	c   *object.Commit
	ctr int
}

// baseQueue is git's prio_queue by commit date: newest first, and first in
// first out among equal dates.
type baseQueue []baseItem

func (q baseQueue) Len() int { return len(q) }
func (q baseQueue) Less(i, j int) bool {
	ti, tj := q[i].c.Committer.When.Unix(), q[j].c.Committer.When.Unix()
	if ti != tj {
		return ti > tj
	}
	return q[i].ctr < q[j].ctr
}
func (q baseQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *baseQueue) Push(x any)   { *q = append(*q, x.(baseItem)) }
func (q *baseQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
