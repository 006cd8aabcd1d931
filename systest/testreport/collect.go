package testreport

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Collect parses the report a step left at name inside an environment's
// root. The environment is untrusted: name is opened through root, so a
// symbolic link cannot lead outside it, without blocking (a FIFO planted
// there cannot hang the worker), and only a regular file is read.
func Collect(root *os.Root, name string, f Format) (*Report, error) {
	rel := strings.TrimLeft(name, "/")
	if rel == "" {
		return nil, fmt.Errorf("testreport: collect %q: not a file name", name)
	}
	file, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("testreport: collect %s report %s: %w", f, name, err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("testreport: collect %s report %s: %w", f, name, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("testreport: collect %s report %s: not a regular file (%s)", f, name, info.Mode().Type())
	}
	rep, err := Parse(f, file)
	if err != nil {
		return nil, fmt.Errorf("testreport: collect %s: %w", name, err)
	}
	return rep, nil
}
