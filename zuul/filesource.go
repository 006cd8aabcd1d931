package zuul

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
)

// FileSource replays Gerrit events from JSON lines, as `gerrit
// stream-events` prints them: a saved stream, standard input, test data.
// Lines it cannot use are logged with their number and skipped; blank
// lines are ignored. Run returns nil at the end of the input.
type FileSource struct {
	name string
	r    io.Reader
	log  *slog.Logger
}

// NewFileSource returns a source reading r; name (a file name, "-") only
// labels its log lines.
func NewFileSource(name string, r io.Reader, log *slog.Logger) *FileSource {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FileSource{name: name, r: r, log: log}
}

// Run sends every event of the input to out, in order.
func (s *FileSource) Run(ctx context.Context, out chan<- Event) error {
	err := readLines(s.r, MaxEventSize, func(n int, line []byte, tooLong bool) error {
		if tooLong {
			s.log.Warn("gerrit event refused", "file", s.name, "line", n, "err", fmt.Sprintf("longer than %d bytes", MaxEventSize))
			return nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		ev, err := ParseEvent(line)
		if err != nil {
			logSkipped(s.log, err, "file", s.name, "line", n)
			return nil
		}
		return send(ctx, out, ev)
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("event file %s: %w", s.name, err)
	}
	return nil
}
