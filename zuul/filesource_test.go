package zuul

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func TestFileSource(t *testing.T) {
	t.Parallel()
	var in strings.Builder
	for _, name := range []string{"patchset-created.json", "reviewer-added.json", "comment-added.json"} {
		b, err := os.ReadFile("testdata/events/" + name)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(b)
	}
	in.WriteString("\n")                                                         // line 4: blank
	in.WriteString("{not json\n")                                                // line 5
	in.WriteString(`{"type":"ref-updated","refUpdate":{"project":"p"}}` + "\n")  // line 6
	in.WriteString(`{"comment":"` + strings.Repeat("z", MaxEventSize) + "\"}\n") // line 7: too long
	b, err := os.ReadFile("testdata/events/ref-updated-2.8.json")
	if err != nil {
		t.Fatal(err)
	}
	in.Write(bytes.TrimSuffix(b, []byte("\n"))) // line 8, no final newline

	var logs bytes.Buffer
	src := NewFileSource("events.jsonl", strings.NewReader(in.String()), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	out := make(chan Event, 10)
	if err := src.Run(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []EventType
	for ev := range out {
		got = append(got, ev.Type)
	}
	want := []EventType{PatchsetCreated, CommentAdded, RefUpdated}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("events %v, want %v", got, want)
	}
	for _, l := range []string{
		"level=DEBUG msg=\"gerrit event skipped\" file=events.jsonl line=2 type=reviewer-added",
		"level=WARN msg=\"gerrit event refused\" file=events.jsonl line=5 err=\"gerrit json: not JSON",
		"level=WARN msg=\"gerrit event refused\" file=events.jsonl line=6 err=\"gerrit json: refUpdate.refName: missing\"",
		"level=WARN msg=\"gerrit event refused\" file=events.jsonl line=7 err=\"longer than 1048576 bytes\"",
	} {
		if !strings.Contains(logs.String(), l) {
			t.Errorf("log lacks %s; log:\n%s", l, logs.String())
		}
	}
	if strings.Contains(logs.String(), "line=4") {
		t.Errorf("blank line logged:\n%s", logs.String())
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestFileSourceStops(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	err := NewFileSource("x", failingReader{boom}, nil).Run(t.Context(), make(chan Event))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "event file x") {
		t.Errorf("read error: %v", err)
	}
	// A cancelled context ends Run, with nil, while it waits to send.
	b, err := os.ReadFile("testdata/events/patchset-created.json")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := NewFileSource("x", io.MultiReader(strings.NewReader(string(b))), nil).Run(ctx, make(chan Event)); err != nil {
		t.Errorf("cancelled Run: %v", err)
	}
}
