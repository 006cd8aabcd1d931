package zuul

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// cfile is a file of a corpus tree.
type cfile struct {
	mode filemode.FileMode
	data string // contents; the target of a symlink; the commit of a submodule
}

// ctree is a corpus tree: path -> file.
type ctree map[string]cfile

func reg(s string) cfile  { return cfile{filemode.Regular, s} }
func exe(s string) cfile  { return cfile{filemode.Executable, s} }
func link(s string) cfile { return cfile{filemode.Symlink, s} }
func gitlink(h string) cfile {
	return cfile{filemode.Submodule, h}
}

// gone marks a deletion in edit.
var gone = cfile{mode: 1}

// edit returns a copy of base with the (path, cfile) pairs set, or removed
// when the cfile is gone.
func edit(base ctree, pairs ...any) ctree {
	out := maps.Clone(base)
	if out == nil {
		out = ctree{}
	}
	for i := 0; i < len(pairs); i += 2 {
		p, f := pairs[i].(string), pairs[i+1].(cfile)
		if f == gone {
			delete(out, p)
		} else {
			out[p] = f
		}
	}
	return out
}

// lines joins numbered lines "1".."n" with edits: lines(9, 2, "two") is
// 1..9 with line 2 replaced by "two".
func lines(n int, repl ...any) string {
	ls := make([]string, n)
	for i := range ls {
		ls[i] = fmt.Sprint(i + 1)
	}
	for i := 0; i < len(repl); i += 2 {
		ls[repl[i].(int)-1] = repl[i+1].(string)
	}
	var b strings.Builder
	for _, l := range ls {
		if l == "" {
			continue // a deleted line
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// Expected outcomes, written down for each case; the test also checks them
// against git, so a wrong expectation fails as well.
const (
	clean = iota + 1
	conflict
)

// mergeCase is one entry of the corpus: the trees of a base commit and of
// two children of it, merged by `git merge -s resolve` and by mergeTrees.
// With x and y set, the history is a criss-cross: x and y are children of
// base, ours merges them (x first) and theirs merges them (y first), so
// that ours and theirs have two merge bases, y (the newer) and x.
type mergeCase struct {
	name               string
	base, ours, theirs ctree
	x, y               ctree
	want               int
	// result, when set, is the merged tree expected: for renames, the
	// tree of a deletion plus an addition.
	result ctree
}

const (
	bin1 = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01"
	bin2 = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x02"
	bin3 = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x03"
	subA = "1111111111111111111111111111111111111111"
	subB = "2222222222222222222222222222222222222222"
	subC = "3333333333333333333333333333333333333333"
)

func mergeCorpus() []mergeCase {
	nine := ctree{"f": reg(lines(9)), "g": reg("g\n")}
	crlf := ctree{"f": reg("one\r\ntwo\r\nthree\r\nfour\r\nfive\r\nsix\r\nseven\r\n")}
	noeol := ctree{"f": reg("a\nb\nc\nd\ne\nf\nz")}
	braces := ctree{"f": reg("func a() {\n\tx()\n}\n\nfunc b() {\n\ty()\n}\n")}
	dir := ctree{"d/x": reg("x\n"), "d/y": reg("y\n"), "d/sub/z": reg("z\n"), "top": reg("t\n")}
	deep := ctree{
		"a/b/c/one": reg(lines(5)), "a/b/c/two": reg(lines(5)), "a/b/d/three": reg(lines(5)),
		"e/f/four": reg(lines(5)), "e/g/five": reg("five\n"), "README": reg("readme\n"),
	}
	media := ctree{"logo.png": reg(bin1), "doc.txt": reg(lines(5))}
	links := ctree{"l": link("target-a"), "target-a": reg("a\n"), "target-b": reg("b\n")}
	tools := ctree{"run.sh": reg("#!/bin/sh\necho 1\necho 2\necho 3\n"), "tool": exe("#!/bin/sh\nexit 0\n")}
	mods := ctree{"sub": gitlink(subA), ".gitmodules": reg("[submodule \"sub\"]\n\tpath = sub\n\turl = ../sub\n")}
	old664 := ctree{"d/old": cfile{filemode.Deprecated, "old\n"}, "d/other": reg("o\n"), "top": reg("t\n")}
	sorting := ctree{"a/x": reg("x\n"), "a-b": reg("ab\n"), "a.c": reg("ac\n")}

	return []mergeCase{
		// Line-level merges of one file.
		{name: "text/disjoint lines", base: nine, ours: edit(nine, "f", reg(lines(9, 2, "two"))), theirs: edit(nine, "f", reg(lines(9, 8, "eight"))), want: clean},
		{name: "text/adjacent lines", base: nine, ours: edit(nine, "f", reg(lines(9, 4, "four"))), theirs: edit(nine, "f", reg(lines(9, 5, "five"))), want: conflict},
		{name: "text/one line apart", base: nine, ours: edit(nine, "f", reg(lines(9, 4, "four"))), theirs: edit(nine, "f", reg(lines(9, 6, "six"))), want: clean},
		{name: "text/same edit", base: nine, ours: edit(nine, "f", reg(lines(9, 4, "four"))), theirs: edit(nine, "f", reg(lines(9, 4, "four"))), want: clean},
		{name: "text/same edit plus more", base: nine, ours: edit(nine, "f", reg(lines(9, 4, "four"))), theirs: edit(nine, "f", reg(lines(9, 4, "four", 8, "eight"))), want: clean},
		{name: "text/overlapping edits", base: nine, ours: edit(nine, "f", reg(lines(9, 4, "four", 5, "five"))), theirs: edit(nine, "f", reg(lines(9, 5, "FIVE", 6, "SIX"))), want: conflict},
		{name: "text/overlap ending alike", base: nine, ours: edit(nine, "f", reg(lines(9, 4, "four", 5, "five"))), theirs: edit(nine, "f", reg(lines(9, 4, "four", 5, "five"))), want: clean},
		{name: "text/start and end", base: nine, ours: edit(nine, "f", reg(lines(9, 1, "one"))), theirs: edit(nine, "f", reg(lines(9, 9, "nine"))), want: clean},
		{name: "text/both insert at start", base: nine, ours: edit(nine, "f", reg("zero\n"+lines(9))), theirs: edit(nine, "f", reg("null\n"+lines(9))), want: conflict},
		{name: "text/both append differently", base: nine, ours: edit(nine, "f", reg(lines(9)+"ten\n")), theirs: edit(nine, "f", reg(lines(9)+"TEN\n")), want: conflict},
		{name: "text/both append alike", base: nine, ours: edit(nine, "f", reg(lines(9)+"ten\n")), theirs: edit(nine, "f", reg(lines(9)+"ten\n")), want: clean},
		{name: "text/insert and edit apart", base: nine, ours: edit(nine, "f", reg("zero\n"+lines(9))), theirs: edit(nine, "f", reg(lines(9, 3, "three"))), want: clean},
		{name: "text/insert next to edit", base: nine, ours: edit(nine, "f", reg(lines(9, 3, "3\nthree-and-a-half"))), theirs: edit(nine, "f", reg(lines(9, 4, "four"))), want: conflict},
		{name: "text/delete block and edit apart", base: nine, ours: edit(nine, "f", reg(lines(9, 2, "", 3, "", 4, ""))), theirs: edit(nine, "f", reg(lines(9, 8, "eight"))), want: clean},
		{name: "text/delete block and edit inside", base: nine, ours: edit(nine, "f", reg(lines(9, 2, "", 3, "", 4, ""))), theirs: edit(nine, "f", reg(lines(9, 3, "three"))), want: conflict},
		{name: "text/both delete block", base: nine, ours: edit(nine, "f", reg(lines(9, 2, "", 3, ""))), theirs: edit(nine, "f", reg(lines(9, 2, "", 3, ""))), want: clean},
		{name: "text/deletes overlapping", base: nine, ours: edit(nine, "f", reg(lines(9, 2, "", 3, ""))), theirs: edit(nine, "f", reg(lines(9, 3, "", 4, ""))), want: conflict},
		{name: "text/whitespace vs edit", base: nine, ours: edit(nine, "f", reg(lines(9, 5, "5 "))), theirs: edit(nine, "f", reg(lines(9, 5, "five"))), want: conflict},
		{name: "text/emptied vs edit", base: nine, ours: edit(nine, "f", reg("")), theirs: edit(nine, "f", reg(lines(9, 5, "five"))), want: conflict},
		{name: "text/crlf disjoint", base: crlf, ours: edit(crlf, "f", reg("ONE\r\ntwo\r\nthree\r\nfour\r\nfive\r\nsix\r\nseven\r\n")), theirs: edit(crlf, "f", reg("one\r\ntwo\r\nthree\r\nfour\r\nfive\r\nsix\r\nSEVEN\r\n")), want: clean},
		{name: "text/crlf to lf vs edit", base: crlf, ours: edit(crlf, "f", reg("one\ntwo\nthree\nfour\nfive\nsix\nseven\n")), theirs: edit(crlf, "f", reg("one\r\ntwo\r\nthree\r\nFOUR\r\nfive\r\nsix\r\nseven\r\n")), want: conflict},
		{name: "text/crlf line added in lf file", base: nine, ours: edit(nine, "f", reg(lines(9, 2, "two\r"))), theirs: edit(nine, "f", reg(lines(9, 7, "seven"))), want: clean},
		{name: "text/no newline, edits apart", base: noeol, ours: edit(noeol, "f", reg("A\nb\nc\nd\ne\nf\nz")), theirs: edit(noeol, "f", reg("a\nb\nc\nd\ne\nf\nZ")), want: clean},
		{name: "text/newline added vs edit apart", base: noeol, ours: edit(noeol, "f", reg("a\nb\nc\nd\ne\nf\nz\n")), theirs: edit(noeol, "f", reg("A\nb\nc\nd\ne\nf\nz")), want: clean},
		{name: "text/newline added vs last line edited", base: noeol, ours: edit(noeol, "f", reg("a\nb\nc\nd\ne\nf\nz\n")), theirs: edit(noeol, "f", reg("a\nb\nc\nd\ne\nf\nZ")), want: conflict},
		{name: "text/newline added on both", base: noeol, ours: edit(noeol, "f", reg("a\nb\nc\nd\ne\nf\nz\n")), theirs: edit(noeol, "f", reg("a\nb\nc\nd\ne\nf\nz\n")), want: clean},
		{name: "text/newline removed vs append", base: nine, ours: edit(nine, "f", reg(strings.TrimSuffix(lines(9), "\n"))), theirs: edit(nine, "f", reg(lines(9)+"ten\n")), want: conflict},
		{name: "text/braces insert function", base: braces, ours: edit(braces, "f", reg("func a() {\n\tx()\n}\n\nfunc c() {\n\tz()\n}\n\nfunc b() {\n\ty()\n}\n")), theirs: edit(braces, "f", reg("func a() {\n\tx()\n}\n\nfunc b() {\n\ty2()\n}\n")), want: clean},
		{name: "text/braces both insert", base: braces, ours: edit(braces, "f", reg("func a() {\n\tx()\n}\n\nfunc c() {\n\tz()\n}\n\nfunc b() {\n\ty()\n}\n")), theirs: edit(braces, "f", reg("func a() {\n\tx()\n}\n\nfunc b() {\n\ty()\n}\n\nfunc d() {\n\tw()\n}\n")), want: clean},
		{name: "text/repeated lines shift", base: ctree{"f": reg("}\n}\n}\nx\n}\n}\n")}, ours: ctree{"f": reg("}\n}\nx\n}\n}\n")}, theirs: ctree{"f": reg("}\n}\n}\nx\n}\ny\n}\n")}, want: clean},
		{name: "text/repeated blank lines", base: ctree{"f": reg("a\n\n\nb\n\n\nc\n")}, ours: ctree{"f": reg("a\n\nb\n\n\nc\n")}, theirs: ctree{"f": reg("a\n\n\nb\n\nc\n")}, want: clean},
		{name: "text/empty file both add", base: ctree{"f": reg("")}, ours: ctree{"f": reg("a\n")}, theirs: ctree{"f": reg("b\n")}, want: conflict},
		{name: "text/empty file one adds", base: ctree{"f": reg("")}, ours: ctree{"f": reg("a\n")}, theirs: ctree{"f": reg(""), "g": reg("g\n")}, want: clean},

		// Paths added and deleted.
		{name: "tree/add different files", base: nine, ours: edit(nine, "new1", reg("1\n")), theirs: edit(nine, "new2", reg("2\n")), want: clean},
		{name: "tree/add same file alike", base: nine, ours: edit(nine, "new", reg("n\n")), theirs: edit(nine, "new", reg("n\n")), want: clean},
		{name: "tree/add same path differently", base: nine, ours: edit(nine, "new", reg("a\n")), theirs: edit(nine, "new", reg("b\n")), want: conflict},
		{name: "tree/add same path, one empty", base: nine, ours: edit(nine, "new", reg("")), theirs: edit(nine, "new", reg("b\n")), want: conflict},
		{name: "tree/add empty files", base: nine, ours: edit(nine, "e1", reg("")), theirs: edit(nine, "e1", reg(""), "e2", reg("")), want: clean},
		{name: "tree/delete unchanged", base: nine, ours: edit(nine, "g", gone), theirs: edit(nine, "f", reg(lines(9, 1, "one"))), want: clean},
		{name: "tree/delete both", base: nine, ours: edit(nine, "g", gone), theirs: edit(nine, "g", gone), want: clean},
		{name: "tree/delete vs modify", base: nine, ours: edit(nine, "g", gone), theirs: edit(nine, "g", reg("G\n")), want: conflict},
		{name: "tree/modify vs delete", base: nine, ours: edit(nine, "g", reg("G\n")), theirs: edit(nine, "g", gone), want: conflict},
		{name: "tree/delete everything vs add", base: nine, ours: ctree{}, theirs: edit(nine, "h", reg("h\n")), want: clean},
		{name: "tree/one clean one conflicting", base: nine, ours: edit(nine, "f", reg(lines(9, 1, "one")), "g", reg("G1\n")), theirs: edit(nine, "f", reg(lines(9, 9, "nine")), "g", reg("G2\n")), want: conflict},
		{name: "tree/several conflicts", base: deep, ours: edit(deep, "a/b/c/one", reg("o\n"), "e/g/five", gone, "README", reg("r1\n")), theirs: edit(deep, "a/b/c/one", reg("t\n"), "e/g/five", reg("5\n"), "README", reg("r2\n")), want: conflict},
		{name: "tree/names that sort around a directory", base: sorting, ours: edit(sorting, "a0", reg("0\n"), "a-b", reg("AB\n")), theirs: edit(sorting, "a/y", reg("y\n"), "a.c", gone), want: clean},
		{name: "tree/spaces and unicode", base: nine, ours: edit(nine, "dir with space/fïle ü", reg("u\n")), theirs: edit(nine, "dir with space/other", reg("o\n")), want: clean},

		// Executable bit.
		{name: "mode/chmod one side", base: tools, ours: edit(tools, "run.sh", exe(tools["run.sh"].data)), theirs: edit(tools, "tool", exe("#!/bin/sh\nexit 1\n")), want: clean},
		{name: "mode/chmod vs edit", base: tools, ours: edit(tools, "run.sh", exe(tools["run.sh"].data)), theirs: edit(tools, "run.sh", reg("#!/bin/sh\necho 1\necho 2\necho three\n")), want: conflict},
		{name: "mode/chmod and edit vs edit", base: tools, ours: edit(tools, "run.sh", exe("#!/bin/sh\necho one\necho 2\necho 3\n")), theirs: edit(tools, "run.sh", exe("#!/bin/sh\necho 1\necho 2\necho three\n")), want: clean},
		{name: "mode/chmod both alike", base: tools, ours: edit(tools, "run.sh", exe(tools["run.sh"].data)), theirs: edit(tools, "run.sh", exe(tools["run.sh"].data)), want: clean},
		{name: "mode/chmod -x vs edit", base: tools, ours: edit(tools, "tool", reg(tools["tool"].data)), theirs: edit(tools, "tool", exe("#!/bin/sh\nexit 2\n")), want: conflict},
		{name: "mode/chmod vs delete", base: tools, ours: edit(tools, "run.sh", exe(tools["run.sh"].data)), theirs: edit(tools, "run.sh", gone), want: conflict},
		{name: "mode/delete vs chmod", base: tools, ours: edit(tools, "tool", gone), theirs: edit(tools, "tool", reg(tools["tool"].data)), want: conflict},
		{name: "mode/added alike but modes differ", base: tools, ours: edit(tools, "new", exe("n\n")), theirs: edit(tools, "new", reg("n\n")), want: conflict},
		{name: "mode/file becomes symlink vs chmod", base: tools, ours: edit(tools, "tool", link("run.sh")), theirs: edit(tools, "tool", reg(tools["tool"].data)), want: conflict},

		// Old group-writable mode 100664.
		{name: "mode/100664 untouched", base: old664, ours: edit(old664, "top", reg("T\n")), theirs: edit(old664, "top2", reg("u\n")), want: clean},
		{name: "mode/100664 dir touched by one side", base: old664, ours: edit(old664, "top", reg("T\n")), theirs: edit(old664, "d/other", reg("O\n")), want: clean},
		{name: "mode/100664 dir touched by both", base: old664, ours: edit(old664, "d/other", reg("O\n")), theirs: edit(old664, "d/third", reg("3\n")), want: clean},
		{name: "mode/100664 file edited", base: old664, ours: edit(old664, "top", reg("T\n")), theirs: edit(old664, "d/old", cfile{filemode.Deprecated, "new\n"}), want: clean},
		{name: "mode/100664 file edited both", base: old664, ours: edit(old664, "d/old", cfile{filemode.Deprecated, "1\nold\n"}), theirs: edit(old664, "d/old", cfile{filemode.Deprecated, "old\n2\n"}), want: clean},

		// Symbolic links.
		{name: "symlink/retarget one side", base: links, ours: edit(links, "l", link("target-b")), theirs: edit(links, "target-a", reg("A\n")), want: clean},
		{name: "symlink/retarget both differently", base: links, ours: edit(links, "l", link("target-b")), theirs: edit(links, "l", link("elsewhere")), want: conflict},
		{name: "symlink/retarget both alike", base: links, ours: edit(links, "l", link("target-b")), theirs: edit(links, "l", link("target-b")), want: clean},
		{name: "symlink/replaced by file vs retarget", base: links, ours: edit(links, "l", reg("now a file\n")), theirs: edit(links, "l", link("target-b")), want: conflict},
		{name: "symlink/file replaced by link vs edit", base: links, ours: edit(links, "target-a", link("target-b")), theirs: edit(links, "target-a", reg("aa\n")), want: conflict},
		{name: "symlink/added both differently", base: links, ours: edit(links, "m", link("x")), theirs: edit(links, "m", link("y")), want: conflict},
		{name: "symlink/deleted vs unchanged", base: links, ours: edit(links, "l", gone), theirs: edit(links, "target-b", reg("B\n")), want: clean},
		{name: "symlink/deleted vs retarget", base: links, ours: edit(links, "l", gone), theirs: edit(links, "l", link("target-b")), want: conflict},

		// Binary files.
		{name: "binary/changed one side", base: media, ours: edit(media, "logo.png", reg(bin2)), theirs: edit(media, "doc.txt", reg(lines(5, 1, "one"))), want: clean},
		{name: "binary/changed both differently", base: media, ours: edit(media, "logo.png", reg(bin2)), theirs: edit(media, "logo.png", reg(bin3)), want: conflict},
		{name: "binary/changed both alike", base: media, ours: edit(media, "logo.png", reg(bin2)), theirs: edit(media, "logo.png", reg(bin2)), want: clean},
		{name: "binary/text becomes binary vs edit", base: media, ours: edit(media, "doc.txt", reg(bin3)), theirs: edit(media, "doc.txt", reg(lines(5, 5, "five"))), want: conflict},
		{name: "binary/binary deleted vs unchanged", base: media, ours: edit(media, "logo.png", gone), theirs: edit(media, "doc.txt", reg(lines(5, 2, "two"))), want: clean},
		{name: "binary/added both differently", base: media, ours: edit(media, "new.bin", reg(bin1)), theirs: edit(media, "new.bin", reg(bin2)), want: conflict},

		// Renames: resolve sees a deletion and an addition.
		{name: "rename/one side", base: nine, ours: edit(nine, "g", gone, "h", reg("g\n")), theirs: edit(nine, "f", reg(lines(9, 3, "three"))), want: clean,
			result: ctree{"f": reg(lines(9, 3, "three")), "h": reg("g\n")}},
		{name: "rename/vs edit of the old name", base: nine, ours: edit(nine, "f", gone, "f2", reg(lines(9))), theirs: edit(nine, "f", reg(lines(9, 3, "three"))), want: conflict},
		{name: "rename/to different names", base: nine, ours: edit(nine, "g", gone, "g1", reg("g\n")), theirs: edit(nine, "g", gone, "g2", reg("g\n")), want: clean,
			result: ctree{"f": reg(lines(9)), "g1": reg("g\n"), "g2": reg("g\n")}},
		{name: "rename/vs delete", base: nine, ours: edit(nine, "g", gone, "g1", reg("g\n")), theirs: edit(nine, "g", gone), want: clean,
			result: ctree{"f": reg(lines(9)), "g1": reg("g\n")}},
		{name: "rename/to the same name", base: nine, ours: edit(nine, "g", gone, "h", reg("g\n")), theirs: edit(nine, "g", gone, "h", reg("g\n")), want: clean},
		{name: "rename/with edit vs edit", base: nine, ours: edit(nine, "f", gone, "f2", reg(lines(9, 1, "one"))), theirs: edit(nine, "f", reg(lines(9, 9, "nine"))), want: conflict},
		{name: "rename/into a directory", base: dir, ours: edit(dir, "top", gone, "d/top", reg("t\n")), theirs: edit(dir, "d/x", reg("X\n")), want: clean},

		// Files and directories.
		{name: "dir/file vs dir added", base: nine, ours: edit(nine, "p", reg("p\n")), theirs: edit(nine, "p/q", reg("q\n")), want: conflict},
		{name: "dir/file replaced by dir", base: nine, ours: edit(nine, "g", gone, "g/x", reg("x\n")), theirs: edit(nine, "f", reg(lines(9, 2, "two"))), want: clean},
		{name: "dir/file replaced by dir vs edit", base: nine, ours: edit(nine, "g", gone, "g/x", reg("x\n")), theirs: edit(nine, "g", reg("G\n")), want: conflict},
		{name: "dir/dir replaced by file", base: dir, ours: edit(dir, "top", reg("T\n")), theirs: edit(dir, "d/x", gone, "d/y", gone, "d/sub/z", gone, "d", reg("d\n")), want: clean},
		{name: "dir/dir replaced by file vs edit inside", base: dir, ours: edit(dir, "d/sub/z", reg("Z\n")), theirs: edit(dir, "d/x", gone, "d/y", gone, "d/sub/z", gone, "d", reg("d\n")), want: conflict},
		{name: "dir/dir replaced by file vs add inside", base: dir, ours: edit(dir, "d/new", reg("n\n")), theirs: edit(dir, "d/x", gone, "d/y", gone, "d/sub/z", gone, "d", reg("d\n")), want: conflict},
		{name: "dir/dir replaced by file on both", base: dir, ours: edit(dir, "d/x", gone, "d/y", gone, "d/sub/z", gone, "d", reg("d\n")), theirs: edit(dir, "d/x", gone, "d/y", gone, "d/sub/z", gone, "d", reg("d\n")), want: clean},
		{name: "dir/dir deleted vs add inside", base: dir, ours: edit(dir, "d/x", gone, "d/y", gone, "d/sub/z", gone), theirs: edit(dir, "d/new", reg("n\n")), want: clean},
		{name: "dir/dir deleted vs edit inside", base: dir, ours: edit(dir, "d/x", gone, "d/y", gone, "d/sub/z", gone), theirs: edit(dir, "d/sub/z", reg("Z\n")), want: conflict},
		{name: "dir/same new dir", base: dir, ours: edit(dir, "n/a", reg("a\n"), "n/b", reg("b\n")), theirs: edit(dir, "n/a", reg("a\n"), "n/b", reg("b\n")), want: clean},
		{name: "dir/new dir, different files", base: dir, ours: edit(dir, "n/a", reg("a\n")), theirs: edit(dir, "n/b", reg("b\n")), want: clean},
		{name: "dir/deep changes apart", base: deep, ours: edit(deep, "a/b/c/one", reg(lines(5, 1, "one")), "e/f/four", reg(lines(5, 5, "five"))), theirs: edit(deep, "a/b/d/three", reg(lines(5, 3, "three")), "a/b/c/two", gone), want: clean},
		{name: "dir/deep same file apart", base: deep, ours: edit(deep, "a/b/c/one", reg(lines(5, 1, "one"))), theirs: edit(deep, "a/b/c/one", reg(lines(5, 5, "five"))), want: clean},
		{name: "dir/symlink replaced by dir", base: links, ours: edit(links, "l", gone, "l/x", reg("x\n")), theirs: edit(links, "target-a", reg("A\n")), want: clean},
		{name: "dir/file in dir vs file of that name", base: ctree{"a": reg("a\n")}, ours: ctree{"a": reg("a\n"), "b/c": reg("c\n")}, theirs: ctree{"a": reg("a\n"), "b": reg("b\n")}, want: conflict},

		// Submodules (gitlinks).
		{name: "submodule/moved one side", base: mods, ours: edit(mods, "sub", gitlink(subB)), theirs: edit(mods, "f", reg("f\n")), want: clean},
		{name: "submodule/moved both differently", base: mods, ours: edit(mods, "sub", gitlink(subB)), theirs: edit(mods, "sub", gitlink(subC)), want: conflict},
		{name: "submodule/moved both alike", base: mods, ours: edit(mods, "sub", gitlink(subB)), theirs: edit(mods, "sub", gitlink(subB)), want: clean},

		// Two merge bases (criss-cross histories).
		{name: "criss-cross/clean",
			base: nine, x: edit(nine, "f", reg(lines(9, 1, "one"))), y: edit(nine, "g", reg("G\n")),
			ours:   edit(nine, "f", reg(lines(9, 1, "one")), "g", reg("G\n")),
			theirs: edit(nine, "f", reg(lines(9, 1, "one", 9, "nine")), "g", reg("G\n")), want: clean},
		{name: "criss-cross/resolved differently",
			base: nine, x: edit(nine, "g", reg("x\n")), y: edit(nine, "g", reg("y\n")),
			ours: edit(nine, "g", reg("xy\n")), theirs: edit(nine, "g", reg("yx\n")), want: conflict},
		{name: "criss-cross/each keeps one base",
			base: nine, x: edit(nine, "g", reg("x\n")), y: edit(nine, "g", reg("y\n")),
			ours: edit(nine, "g", reg("x\n")), theirs: edit(nine, "g", reg("y\n")), want: conflict},
		{name: "criss-cross/one keeps the newer base",
			base: nine, x: edit(nine, "g", reg("x\n")), y: edit(nine, "g", reg("y\n")),
			ours: edit(nine, "g", reg("y\n")), theirs: edit(nine, "g", reg("z\n")), want: clean},
		{name: "criss-cross/line merge against the newer base",
			base: nine, x: edit(nine, "f", reg(lines(9, 1, "x1"))), y: edit(nine, "f", reg(lines(9, 9, "y9"))),
			ours:   edit(nine, "f", reg(lines(9, 1, "x1", 5, "o5", 9, "y9"))),
			theirs: edit(nine, "f", reg(lines(9, 1, "x1", 9, "y9", 3, "t3"))), want: clean},
		{name: "criss-cross/adjacent against the newer base",
			base: nine, x: edit(nine, "f", reg(lines(9, 1, "x1"))), y: edit(nine, "f", reg(lines(9, 9, "y9"))),
			ours:   edit(nine, "f", reg(lines(9, 1, "x1", 5, "o5", 9, "y9"))),
			theirs: edit(nine, "f", reg(lines(9, 1, "x1", 9, "y9", 4, "t4"))), want: conflict},
		{name: "criss-cross/file in one base only",
			base: nine, x: edit(nine, "h", reg("h\n")), y: edit(nine, "i", reg("i\n")),
			ours: edit(nine, "h", reg("h\n"), "i", reg("i\n")), theirs: edit(nine, "h", reg("H\n"), "i", reg("i\n")), want: clean},
	}
}

// corpusTime is when the corpus commits are made; ours and theirs are
// later, x before y.
var corpusTime = time.Unix(1700000000, 0).UTC()

// writeCTree stores t in sto and returns its tree.
func writeCTree(t testing.TB, sto storer.EncodedObjectStorer, tree ctree) plumbing.Hash {
	t.Helper()
	type node struct {
		files map[string]cfile
		dirs  map[string]*node
	}
	root := &node{files: map[string]cfile{}, dirs: map[string]*node{}}
	for p, f := range tree {
		parts := strings.Split(p, "/")
		n := root
		for _, d := range parts[:len(parts)-1] {
			if n.dirs[d] == nil {
				n.dirs[d] = &node{files: map[string]cfile{}, dirs: map[string]*node{}}
			}
			n = n.dirs[d]
		}
		n.files[parts[len(parts)-1]] = f
	}
	var write func(n *node) plumbing.Hash
	write = func(n *node) plumbing.Hash {
		var entries []object.TreeEntry
		for name, f := range n.files {
			var h plumbing.Hash
			if f.mode == filemode.Submodule {
				h = plumbing.NewHash(f.data)
			} else {
				o := sto.NewEncodedObject()
				o.SetType(plumbing.BlobObject)
				w, _ := o.Writer()
				w.Write([]byte(f.data))
				w.Close()
				var err error
				if h, err = sto.SetEncodedObject(o); err != nil {
					t.Fatal(err)
				}
			}
			entries = append(entries, object.TreeEntry{Name: name, Mode: f.mode, Hash: h})
		}
		for name, d := range n.dirs {
			entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: write(d)})
		}
		h, err := writeTree(sto, entries)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	return write(root)
}

// writeCommit stores a commit of tree with parents, made at corpusTime+sec.
func writeCommit(t testing.TB, sto storer.EncodedObjectStorer, msg string, tree plumbing.Hash, sec int, parents ...plumbing.Hash) plumbing.Hash {
	t.Helper()
	sig := object.Signature{Name: "Corpus", Email: "corpus@example.org", When: corpusTime.Add(time.Duration(sec) * time.Second)}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg + "\n", TreeHash: tree, ParentHashes: parents}
	o := sto.NewEncodedObject()
	if err := c.Encode(o); err != nil {
		t.Fatal(err)
	}
	h, err := sto.SetEncodedObject(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// corpusRepo makes a repository with the history of c and returns it with
// the commits ours and theirs.
func corpusRepo(t testing.TB, dir string, c mergeCase) (*git.Repository, plumbing.Hash, plumbing.Hash) {
	t.Helper()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	sto := repo.Storer
	base := writeCommit(t, sto, "base", writeCTree(t, sto, c.base), 0)
	var ours, theirs plumbing.Hash
	if c.x != nil {
		x := writeCommit(t, sto, "x", writeCTree(t, sto, c.x), 5, base)
		y := writeCommit(t, sto, "y", writeCTree(t, sto, c.y), 7, base)
		ours = writeCommit(t, sto, "ours", writeCTree(t, sto, c.ours), 10, x, y)
		theirs = writeCommit(t, sto, "theirs", writeCTree(t, sto, c.theirs), 20, y, x)
	} else {
		ours = writeCommit(t, sto, "ours", writeCTree(t, sto, c.ours), 10, base)
		theirs = writeCommit(t, sto, "theirs", writeCTree(t, sto, c.theirs), 20, base)
	}
	for name, h := range map[string]plumbing.Hash{"refs/heads/ours": ours, "refs/heads/theirs": theirs} {
		if err := sto.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(name), h)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sto.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/ours")); err != nil {
		t.Fatal(err)
	}
	return repo, ours, theirs
}

// mergeCommitsForTest merges two commits of repo with mergeBases and
// mergeTrees.
func mergeCommitsForTest(ctx context.Context, t testing.TB, repo *git.Repository, ours, theirs plumbing.Hash) (plumbing.Hash, []PathConflict) {
	t.Helper()
	o, err := repo.CommitObject(ours)
	if err != nil {
		t.Fatal(err)
	}
	th, err := repo.CommitObject(theirs)
	if err != nil {
		t.Fatal(err)
	}
	bases, err := mergeBases(ctx, repo.Storer, o, th)
	if err != nil {
		t.Fatal(err)
	}
	var trees []*object.Tree
	for _, b := range bases {
		tr, err := b.Tree()
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, tr)
	}
	ot, err := o.Tree()
	if err != nil {
		t.Fatal(err)
	}
	tt, err := th.Tree()
	if err != nil {
		t.Fatal(err)
	}
	h, conflicts, err := mergeTrees(ctx, repo.Storer, nil, trees, ot, tt)
	if err != nil {
		t.Fatal(err)
	}
	return h, conflicts
}

// TestMergeCorpus merges every corpus case with `git merge -s resolve` and
// with mergeTrees: the trees must be the same, or both must conflict (and
// then on the same paths, as `git ls-files -u` lists them).
func TestMergeCorpus(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "git")
	cases := mergeCorpus()
	byName := make(map[string]mergeCase)
	for _, c := range cases {
		if _, dup := byName[c.name]; dup {
			t.Fatalf("case %q twice", c.name)
		}
		byName[c.name] = c
	}
	results := make(chan [2]string, len(cases)) // name, tree or "conflict"
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				dir := filepath.Join(t.TempDir(), "repo")
				repo, ours, theirs := corpusRepo(t, dir, c)
				got, conflicts := mergeCommitsForTest(ctx, t, repo, ours, theirs)

				if out, code := runGit(ctx, t, dir, "reset", "-q", "--hard"); code != 0 {
					t.Fatalf("git reset: %d %s", code, out)
				}
				_, code := runGit(ctx, t, dir, "merge", "-q", "-s", "resolve", "--no-ff", "--no-edit", "theirs")
				gitClean := code == 0
				var wantTree string
				if gitClean {
					out, _ := runGit(ctx, t, dir, "rev-parse", "HEAD^{tree}")
					wantTree = strings.TrimSpace(out)
				}

				switch {
				case gitClean && conflicts != nil:
					t.Errorf("git merges to %s; mergeTrees conflicts: %v", wantTree, conflicts)
				case !gitClean && conflicts == nil:
					t.Errorf("git conflicts; mergeTrees merges to %s", got)
				case gitClean && got.String() != wantTree:
					t.Errorf("trees differ: git %s, mergeTrees %s", wantTree, got)
					out, _ := runGit(ctx, t, dir, "diff", "--stat", got.String(), "HEAD")
					t.Log(out)
				case !gitClean:
					out, _ := runGit(ctx, t, dir, "ls-files", "-u")
					unmerged := map[string]bool{}
					for l := range strings.Lines(out) {
						if _, p, ok := strings.Cut(strings.TrimSuffix(l, "\n"), "\t"); ok {
							unmerged[p] = true
						}
					}
					var ours []string
					for _, c := range conflicts {
						ours = append(ours, c.Path)
					}
					if theirs := slices.Sorted(maps.Keys(unmerged)); !slices.Equal(ours, theirs) {
						t.Errorf("conflicting paths: git %v, mergeTrees %v", theirs, conflicts)
					}
				}
				switch {
				case c.want == clean && conflicts != nil, c.want == conflict && conflicts == nil:
					t.Errorf("expected %s", map[int]string{clean: "a clean merge", conflict: "a conflict"}[c.want])
				}
				if c.result != nil && conflicts == nil {
					if want := writeCTree(t, repo.Storer, c.result); got != want {
						t.Errorf("merged to %s, want the tree %s of %v", got, want, slices.Sorted(maps.Keys(c.result)))
					}
				}
				res := got.String()
				if conflicts != nil {
					res = "conflict"
				}
				results <- [2]string{c.name, res}
			})
		}
	})
	close(results)
	got := make(map[string]string)
	for r := range results {
		got[r[0]] = r[1]
	}
	nClean, nConflict := 0, 0
	for _, c := range cases {
		if got[c.name] == "conflict" {
			nConflict++
		} else {
			nClean++
		}
	}
	t.Logf("corpus: %d cases (%d clean, %d conflicts), all as git merge -s resolve", len(cases), nClean, nConflict)
}
