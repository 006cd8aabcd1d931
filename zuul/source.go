package zuul

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
)

// Source is where Gerrit events come from: the SSH stream (SSHSource), the
// webhooks plugin (Webhook) or a file of JSON lines (FileSource). Run
// sends events to out until ctx ends (then it returns nil) or the source
// fails for good. A line it cannot use is logged and skipped, never the
// end of the stream.
type Source interface {
	Run(ctx context.Context, out chan<- Event) error
}

var (
	_ Source = (*FileSource)(nil)
	_ Source = (*Webhook)(nil)
	_ Source = (*SSHSource)(nil)
)

// send delivers ev unless ctx ends first.
func send(ctx context.Context, out chan<- Event, ev Event) error {
	select {
	case out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logSkipped logs a line that ParseEvent refused: unsupported types
// quietly, broken lines loudly.
func logSkipped(log *slog.Logger, err error, attrs ...any) {
	if u, ok := errors.AsType[*UnsupportedEventError](err); ok {
		log.Debug("gerrit event skipped", append(attrs, "type", u.Type)...)
		return
	}
	log.Warn("gerrit event refused", append(attrs, "err", err)...)
}

// readLines calls fn with each line of r (numbered from 1, end of line
// removed). A line longer than max bytes is not kept: fn gets it with
// tooLong set and line nil, and reading goes on after it. The slice is
// only valid during the call. readLines stops at the first error of fn or
// of r; the end of r is not an error.
func readLines(r io.Reader, max int, fn func(n int, line []byte, tooLong bool) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		buf      []byte
		skipping bool
		n        int
	)
	for {
		chunk, err := br.ReadSlice('\n')
		if !skipping {
			buf = append(buf, chunk...)
			if len(bytes.TrimRight(buf, "\r\n")) > max {
				skipping, buf = true, buf[:0]
			}
		}
		ended := len(chunk) > 0 && chunk[len(chunk)-1] == '\n'
		if !ended && err == io.EOF && (len(buf) > 0 || skipping) {
			ended = true // a last line without its newline
		}
		if ended {
			n++
			var ferr error
			if skipping {
				ferr = fn(n, nil, true)
			} else {
				ferr = fn(n, bytes.TrimRight(buf, "\r\n"), false)
			}
			if ferr != nil {
				return ferr
			}
			skipping, buf = false, buf[:0]
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}
