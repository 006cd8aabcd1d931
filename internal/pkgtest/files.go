package pkgtest

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// epoch is the fixed time stamped on everything inside a package.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// file is one regular file of a package's payload.
type file struct {
	name string // absolute and clean: "/usr/share/doc/foo/README"
	body []byte
}

// payloadFiles returns the files of a package named name at version: files,
// or the default README when files is empty, plus the payload file when
// payloadSize > 0. Names are cleaned and the result is sorted by name.
func payloadFiles(name, version string, files map[string][]byte, payloadSize int) ([]file, error) {
	var out []file
	if len(files) == 0 {
		out = append(out, file{
			name: "/usr/share/doc/" + name + "/README",
			body: []byte("synthetic test package " + name + " " + version + "\n"),
		})
	}
	for k, body := range files {
		n, err := cleanName(k)
		if err != nil {
			return nil, err
		}
		out = append(out, file{name: n, body: body})
	}
	if payloadSize > 0 {
		out = append(out, file{
			name: "/usr/share/" + name + "/payload",
			body: Payload(payloadSeed(name, version), payloadSize),
		})
	}
	slices.SortFunc(out, func(a, b file) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(out); i++ {
		prev, cur := out[i-1].name, out[i].name
		if prev == cur {
			return nil, fmt.Errorf("Files: %s given twice", cur)
		}
	}
	// A file cannot also be the parent directory of another file. Its
	// children need not sort right after it ("/a" < "/a-b" < "/a/c"), so
	// check each file's parents.
	names := make(map[string]bool, len(out))
	for _, f := range out {
		names[f.name] = true
	}
	for _, f := range out {
		for d := path.Dir(f.name); d != "/"; d = path.Dir(d) {
			if names[d] {
				return nil, fmt.Errorf("Files: %s is both a file and the directory of %s", d, f.name)
			}
		}
	}
	return out, nil
}

// cleanName turns a name from Files ("/usr/x", "usr/x" or "./usr/x") into
// an absolute, clean path.
func cleanName(name string) (string, error) {
	if strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", fmt.Errorf("Files: name %q has a control character", name)
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf("Files: name %q has a .. element", name)
	}
	n := path.Clean("/" + name)
	if n == "/" {
		return "", fmt.Errorf("Files: name %q is not a file", name)
	}
	return n, nil
}

// parentDirs returns every directory that holds one of files, without "/",
// sorted so that a parent comes before its children.
func parentDirs(files []file) []string {
	seen := make(map[string]bool)
	var dirs []string
	for _, f := range files {
		for d := path.Dir(f.name); d != "/" && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	return dirs
}

// writeFile writes b to dir/name through a temporary file and a rename, so
// a reader of dir never sees half a package. It does not fsync: test
// fixtures need not survive a crash, and benchmarks write thousands.
func writeFile(dir, name string, b []byte) (string, error) {
	dst := filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", dst, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		return "", errors.Join(fmt.Errorf("write %s: %w", dst, err), os.Remove(tmp))
	}
	return dst, nil
}
