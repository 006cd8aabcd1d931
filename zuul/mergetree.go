package zuul

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// This file is `git merge -s resolve` on trees: git-merge-resolve.sh runs
// `git read-tree -m --aggressive <bases> HEAD <theirs>`, which settles the
// trivial cases path by path (unpack-trees.c threeway_merge), then
// `git merge-index -o git-merge-one-file -a` on what is left, which merges
// file contents with `git merge-file`. Renames are not detected: a rename is
// a deletion and an addition, as the resolve strategy sees it.

// mergeMaxBases is how many merge bases a resolve merge takes: read-tree
// reads at most 8 trees, and two of them are ours and theirs.
const mergeMaxBases = 6

// Why a path did not merge.
const (
	ReasonContent      = "content"        // overlapping changes to a text file
	ReasonBinary       = "binary"         // a binary (or huge) file changed on both sides
	ReasonAddAdd       = "add/add"        // added on both sides with different contents
	ReasonModifyDelete = "modify/delete"  // changed on one side, deleted on the other
	ReasonMode         = "mode"           // the sides disagree on the file mode
	ReasonSymlink      = "symlink"        // a symbolic link changed differently on both sides
	ReasonSubmodule    = "submodule"      // a submodule changed differently on both sides
	ReasonFileDir      = "file/directory" // a file on one side where the other has a directory
	ReasonDeleteMode   = "delete/mode"    // deleted on one side, mode changed on the other
)

// PathConflict is one path that did not merge, and why (one of the Reason
// constants).
type PathConflict struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// mergeEntry is a non-directory tree entry: a file, symbolic link or
// submodule.
type mergeEntry struct {
	mode filemode.FileMode
	hash plumbing.Hash
}

// dfMarker stands in a tree's slot where that tree has a directory, or had
// a file at a directory above: read-tree's df_conflict_entry. It never
// equals a real entry.
var dfMarker = &mergeEntry{}

func sameEntry(a, b *mergeEntry) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	return a.mode == b.mode && a.hash == b.hash
}

// treeMerger merges trees of one repository, writing the blobs and trees
// it makes into sto.
type treeMerger struct {
	ctx       context.Context
	sto       storer.EncodedObjectStorer
	nbases    int
	canon     *canonCache
	conflicts []PathConflict
}

// canonCache remembers which trees are canonical (see canonical). Trees
// are named by their content, so a verdict never goes stale.
type canonCache struct {
	mu sync.Mutex
	m  map[plumbing.Hash]bool
}

// canonCacheMax bounds the cache; past it, it starts again empty.
const canonCacheMax = 1 << 18

func newCanonCache() *canonCache { return &canonCache{m: make(map[plumbing.Hash]bool)} }

func (c *canonCache) get(h plumbing.Hash) (bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[h]
	return v, ok
}

func (c *canonCache) put(h plumbing.Hash, v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= canonCacheMax {
		clear(c.m)
	}
	c.m[h] = v
}

// mergeTrees merges ours and theirs given their merge bases (in git's order,
// see mergeBases) as `git merge -s resolve` does. It returns the merged
// tree, written to sto, or, when some paths do not merge, their list (and a
// zero hash). canon, a cache of canonical trees, may be shared between
// merges, or nil.
func mergeTrees(ctx context.Context, sto storer.EncodedObjectStorer, canon *canonCache, bases []*object.Tree, ours, theirs *object.Tree) (plumbing.Hash, []PathConflict, error) {
	if len(bases) == 0 {
		return plumbing.ZeroHash, nil, errors.New("no merge base")
	}
	if len(bases) > mergeMaxBases {
		return plumbing.ZeroHash, nil, fmt.Errorf("%d merge bases: a resolve merge takes at most %d", len(bases), mergeMaxBases)
	}
	if canon == nil {
		canon = newCanonCache()
	}
	m := &treeMerger{ctx: ctx, sto: sto, nbases: len(bases), canon: canon}
	trees := append(slices.Clone(bases), ours, theirs)
	entries, err := m.dir("", trees, 0)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	if len(m.conflicts) > 0 {
		// In git's index order, as `git ls-files -u` lists them.
		slices.SortStableFunc(m.conflicts, func(a, b PathConflict) int { return strings.Compare(a.Path, b.Path) })
		return plumbing.ZeroHash, m.conflicts, nil
	}
	h, err := m.writeTree(entries)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	return h, nil, nil
}

// slot is what one tree has at a name.
type slot struct {
	e   *object.TreeEntry // nil: nothing
	dir bool
}

// dir merges one directory. trees has a tree per input (bases..., ours,
// theirs), nil where that input has no directory here; df has bit i set when
// input i had a file at a directory above. It returns the merged entries,
// unsorted.
func (m *treeMerger) dir(path string, trees []*object.Tree, df uint) ([]object.TreeEntry, error) {
	if err := m.ctx.Err(); err != nil {
		return nil, err
	}
	n := len(trees)
	names := make(map[string][]slot)
	for i, t := range trees {
		if t == nil {
			continue
		}
		for j := range t.Entries {
			e := &t.Entries[j]
			s := names[e.Name]
			if s == nil {
				s = make([]slot, n)
				names[e.Name] = s
			}
			s[i] = slot{e: e, dir: e.Mode == filemode.Dir}
		}
	}
	sorted := make([]string, 0, len(names))
	for name := range names {
		sorted = append(sorted, name)
	}
	slices.Sort(sorted)

	var out []object.TreeEntry
	for _, name := range sorted {
		s := names[name]
		p := path + name
		var mask, dirmask uint
		for i, sl := range s {
			if sl.e != nil {
				mask |= 1 << i
				if sl.dir {
					dirmask |= 1 << i
				}
			}
		}
		conflicts := df | dirmask

		var file *mergeEntry
		if mask != dirmask {
			stages := make([]*mergeEntry, n)
			for i, sl := range s {
				switch {
				case conflicts&(1<<i) != 0:
					stages[i] = dfMarker
				case sl.e != nil:
					stages[i] = &mergeEntry{mode: sl.e.Mode, hash: sl.e.Hash}
				}
			}
			var err error
			file, err = m.file(p, stages)
			if err != nil {
				return nil, err
			}
		}

		var sub []object.TreeEntry
		var subHash plumbing.Hash // when the directory is taken whole
		if dirmask != 0 {
			subs := make([]*object.Tree, n)
			for i, sl := range s {
				if dirmask&(1<<i) != 0 {
					t, err := object.GetTree(m.sto, sl.e.Hash)
					if err != nil {
						return nil, fmt.Errorf("tree %s: %w", p, err)
					}
					subs[i] = t
				}
			}
			h, whole := wholeDir(subs, m.nbases)
			if whole {
				var err error
				if whole, err = m.canonical(h); err != nil {
					return nil, err
				}
			}
			if whole {
				subHash = h
			} else {
				var err error
				sub, err = m.dir(p+"/", subs, df|(mask&^dirmask))
				if err != nil {
					return nil, err
				}
			}
		}
		hasDir := !subHash.IsZero() || len(sub) > 0

		switch {
		case file != nil && hasDir:
			// git adds the file, then fails to add each path of the
			// directory: those are the ones left unmerged.
			if err := m.fileDirConflict(p, sub, subHash); err != nil {
				return nil, err
			}
		case file != nil:
			out = append(out, object.TreeEntry{Name: name, Mode: file.mode, Hash: file.hash})
		case !subHash.IsZero():
			out = append(out, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: subHash})
		case len(sub) > 0:
			h, err := m.writeTree(sub)
			if err != nil {
				return nil, err
			}
			out = append(out, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
		}
	}
	return out, nil
}

// fileDirConflict records the paths of a merged directory that meets a
// merged file: its entries, or those of the tree h.
func (m *treeMerger) fileDirConflict(dir string, entries []object.TreeEntry, h plumbing.Hash) error {
	if !h.IsZero() {
		t, err := object.GetTree(m.sto, h)
		if err != nil {
			return fmt.Errorf("tree %s: %w", dir, err)
		}
		entries = t.Entries
	}
	slices.SortFunc(entries, func(a, b object.TreeEntry) int { return strings.Compare(a.Name, b.Name) })
	for _, e := range entries {
		p := dir + "/" + e.Name
		if e.Mode != filemode.Dir {
			m.conflicts = append(m.conflicts, PathConflict{Path: p, Reason: ReasonFileDir})
			continue
		}
		if err := m.fileDirConflict(p, nil, e.Hash); err != nil {
			return err
		}
	}
	return nil
}

// canonical tells whether the tree h is as git would write it from an
// index: entries sorted, modes canonical (no 100664), and so its subtrees.
// git's read-tree and write-tree rewrite any other tree, so one that is not
// canonical cannot be taken whole into a merge.
func (m *treeMerger) canonical(h plumbing.Hash) (bool, error) {
	if v, ok := m.canon.get(h); ok {
		return v, nil
	}
	t, err := object.GetTree(m.sto, h)
	if err != nil {
		return false, fmt.Errorf("tree %s: %w", h, err)
	}
	// Decoding canonicalises the modes; encoding again must give the
	// same object.
	o := &plumbing.MemoryObject{}
	ok := t.Encode(o) == nil && o.Hash() == h
	for _, e := range t.Entries {
		if !ok {
			break
		}
		if e.Mode == filemode.Dir {
			if ok, err = m.canonical(e.Hash); err != nil {
				return false, err
			}
		}
	}
	m.canon.put(h, ok)
	return ok, nil
}

// wholeDir tells whether a directory that ours and theirs both have merges
// to one side's tree as it is, without looking inside: when both sides have
// the same tree, or when every base and one side have the same tree (then
// every path in it resolves to the other side's entry).
func wholeDir(subs []*object.Tree, nbases int) (plumbing.Hash, bool) {
	ours, theirs := subs[nbases], subs[nbases+1]
	if ours == nil || theirs == nil {
		return plumbing.ZeroHash, false
	}
	if ours.Hash == theirs.Hash {
		return ours.Hash, true
	}
	baseHash := plumbing.ZeroHash
	for _, b := range subs[:nbases] {
		if b == nil || (!baseHash.IsZero() && b.Hash != baseHash) {
			return plumbing.ZeroHash, false
		}
		baseHash = b.Hash
	}
	switch baseHash {
	case ours.Hash:
		return theirs.Hash, true
	case theirs.Hash:
		return ours.Hash, true
	}
	return plumbing.ZeroHash, false
}

// file merges one non-directory path. stages has an entry per input
// (bases..., ours, theirs): nil where the input has nothing, dfMarker where
// it has a directory. It returns the merged entry, or nil when the path is
// deleted or conflicts (then recorded).
func (m *treeMerger) file(path string, stages []*mergeEntry) (*mergeEntry, error) {
	bases := stages[:m.nbases]
	head, remote := stages[m.nbases], stages[m.nbases+1]

	// read-tree -m --aggressive (threeway_merge).
	anyAncMissing, noAncExists := false, true
	for _, b := range bases {
		if b == nil || b == dfMarker {
			anyAncMissing = true
		} else {
			noAncExists = false
		}
	}
	dfHead, dfRemote := head == dfMarker, remote == dfMarker
	if dfHead {
		head = nil
	}
	if dfRemote {
		remote = nil
	}
	headMatch, remoteMatch := 0, 0
	if !sameEntry(remote, head) {
		for i, b := range bases {
			if sameEntry(b, head) {
				headMatch = i + 1
			}
			if sameEntry(b, remote) {
				remoteMatch = i + 1
			}
		}
	}
	if remote != nil && !dfHead && headMatch > 0 && remoteMatch == 0 {
		return remote, nil
	}
	if head != nil {
		if sameEntry(head, remote) {
			return head, nil
		}
		if !dfRemote && remoteMatch > 0 && headMatch == 0 {
			return head, nil
		}
	}
	if head == nil && remote == nil && anyAncMissing {
		return nil, nil
	}
	if (head == nil && remote == nil) ||
		(head == nil && remote != nil && remoteMatch > 0) ||
		(remote == nil && head != nil && headMatch > 0) {
		return nil, nil
	}
	if noAncExists && head != nil && remote != nil && sameEntry(head, remote) {
		return head, nil
	}
	var orig *mergeEntry
	if headMatch == 0 || remoteMatch == 0 {
		for _, b := range bases {
			if b != nil && b != dfMarker {
				orig = b
				break
			}
		}
	}
	return m.oneFile(path, orig, head, remote)
}

// oneFile resolves a path read-tree left unmerged, as git-merge-one-file
// does: orig, ours and theirs are its stages 1, 2 and 3 (nil when absent).
func (m *treeMerger) oneFile(path string, orig, ours, theirs *mergeEntry) (*mergeEntry, error) {
	conflict := func(reason string) (*mergeEntry, error) {
		m.conflicts = append(m.conflicts, PathConflict{Path: path, Reason: reason})
		return nil, nil
	}
	sha := func(e *mergeEntry) string {
		if e == nil {
			return ""
		}
		return e.hash.String()
	}
	mode := func(e *mergeEntry) filemode.FileMode {
		if e == nil {
			return 0
		}
		return e.mode
	}
	h1, h2, h3 := sha(orig), sha(ours), sha(theirs)
	switch {
	case orig != nil && ((ours == nil && theirs == nil) || (ours == nil && h3 == h1) || (theirs == nil && h2 == h1)):
		// Deleted on both sides, or on one and unchanged (in content)
		// on the other.
		if (ours == nil && orig.mode != mode(theirs)) || (theirs == nil && orig.mode != mode(ours)) {
			return conflict(ReasonDeleteMode)
		}
		return nil, nil
	case orig == nil && ours != nil && theirs == nil:
		return ours, nil
	case orig == nil && ours == nil && theirs != nil:
		return theirs, nil
	case orig == nil && ours != nil && theirs != nil && h2 == h3:
		if ours.mode != theirs.mode {
			return conflict(ReasonMode)
		}
		return ours, nil
	case ours != nil && theirs != nil:
		for _, md := range []filemode.FileMode{ours.mode, theirs.mode} {
			switch md {
			case filemode.Symlink:
				return conflict(ReasonSymlink)
			case filemode.Submodule:
				return conflict(ReasonSubmodule)
			}
		}
		var base []byte
		if orig != nil {
			b, err := m.blob(orig.hash)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			base = b
		}
		a, err := m.blob(ours.hash)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		b, err := m.blob(theirs.hash)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		merged, outcome, err := merge3(base, a, b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		switch {
		case outcome == mergeBinary:
			return conflict(ReasonBinary)
		case outcome != mergeClean:
			return conflict(ReasonContent)
		case orig == nil:
			// Added on both sides, differently: git calls it a
			// conflict even when the contents merge.
			return conflict(ReasonAddAdd)
		case ours.mode != theirs.mode:
			return conflict(ReasonMode)
		}
		h, err := m.writeBlob(merged)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &mergeEntry{mode: ours.mode, hash: h}, nil
	}
	return conflict(ReasonModifyDelete)
}

func (m *treeMerger) blob(h plumbing.Hash) ([]byte, error) {
	o, err := m.sto.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	r, err := o.Reader()
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	return b, nil
}

func (m *treeMerger) writeBlob(b []byte) (plumbing.Hash, error) {
	o := m.sto.NewEncodedObject()
	o.SetType(plumbing.BlobObject)
	o.SetSize(int64(len(b)))
	w, err := o.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return m.sto.SetEncodedObject(o)
}

// writeTree sorts entries in git's tree order and stores the tree.
func (m *treeMerger) writeTree(entries []object.TreeEntry) (plumbing.Hash, error) {
	return writeTree(m.sto, entries)
}

func writeTree(sto storer.EncodedObjectStorer, entries []object.TreeEntry) (plumbing.Hash, error) {
	slices.SortFunc(entries, func(a, b object.TreeEntry) int {
		return strings.Compare(treeSortName(a), treeSortName(b))
	})
	t := &object.Tree{Entries: entries}
	o := sto.NewEncodedObject()
	if err := t.Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return sto.SetEncodedObject(o)
}

// treeSortName is the name git sorts a tree entry by: a directory sorts as
// if its name ended with '/'.
func treeSortName(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}
