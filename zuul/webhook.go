package zuul

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// Webhook receives the events that Gerrit's webhooks plugin posts (each
// body is one event, in the JSON that `gerrit stream-events` prints) and
// hands them to Run. It is an http.Handler for one path, e.g.
// mux.Handle("POST /gerrit/events", wh).
//
// A request must carry "Authorization: Bearer <secret>"; the secret is
// compared in constant time. Answers, all with a JSON body:
//
//	202 the event is queued for Run
//	200 a well-formed event of a type sluice does not act on (ignored)
//	400 a body that is not a usable event ({"error", "field"})
//	401 no or a wrong secret
//	405 not a POST
//	413 a body over MaxEventSize
//	503 the queue is full (Run is behind or not running); retry later
type Webhook struct {
	secret [sha256.Size]byte
	queue  chan Event
	sink   func(context.Context, Event) error
	log    *slog.Logger
}

// DefaultWebhookQueue is how many received events wait for Run by default.
const DefaultWebhookQueue = 1024

// NewWebhook returns a webhook receiver that accepts requests bearing
// secret (which the caller reads from a file or the environment, never a
// flag) and keeps up to queue events for Run (DefaultWebhookQueue if
// queue <= 0). With a sink, each event is handed to it before the answer
// instead (the journal: an event is stored before Gerrit is told it was
// taken), a sink error answers 503, and Run has nothing to send.
func NewWebhook(secret []byte, queue int, sink func(context.Context, Event) error, log *slog.Logger) (*Webhook, error) {
	if len(secret) < 16 {
		return nil, errors.New("gerrit webhook: the secret must be at least 16 bytes")
	}
	if queue <= 0 {
		queue = DefaultWebhookQueue
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Webhook{secret: sha256.Sum256(secret), queue: make(chan Event, queue), sink: sink, log: log}, nil
}

type webhookAnswer struct {
	Status string `json:"status,omitempty"`
	Type   string `json:"type,omitempty"`
	Error  string `json:"error,omitempty"`
	Field  string `json:"field,omitempty"`
}

func (w *Webhook) answer(rw http.ResponseWriter, code int, a webhookAnswer) {
	b, _ := json.Marshal(a) // a has only strings: cannot fail
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(code)
	rw.Write(append(b, '\n'))
}

// authorized says whether r bears the secret. Hashing both sides first
// makes the comparison's time independent of the token's length too.
func (w *Webhook) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], w.secret[:]) == 1
}

// ServeHTTP takes one event.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		w.answer(rw, http.StatusMethodNotAllowed, webhookAnswer{Error: "only POST"})
		return
	}
	if !w.authorized(r) {
		w.log.Warn("gerrit webhook unauthorized", "remote", r.RemoteAddr)
		rw.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		w.answer(rw, http.StatusUnauthorized, webhookAnswer{Error: "a valid bearer token is required"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxEventSize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			w.answer(rw, http.StatusRequestEntityTooLarge, webhookAnswer{Error: "event larger than 1 MiB"})
			return
		}
		w.answer(rw, http.StatusBadRequest, webhookAnswer{Error: "read body: " + err.Error()})
		return
	}
	ev, err := ParseEvent(body)
	if u, ok := errors.AsType[*UnsupportedEventError](err); ok {
		w.log.Debug("gerrit event skipped", "type", u.Type, "remote", r.RemoteAddr)
		w.answer(rw, http.StatusOK, webhookAnswer{Status: "ignored", Type: u.Type})
		return
	}
	if err != nil {
		w.log.Warn("gerrit event refused", "remote", r.RemoteAddr, "err", err)
		a := webhookAnswer{Error: err.Error()}
		if pe, ok := errors.AsType[*ParseError](err); ok {
			a.Field = pe.Field
		}
		w.answer(rw, http.StatusBadRequest, a)
		return
	}
	if w.sink != nil {
		if err := w.sink(r.Context(), ev); err != nil {
			w.log.Error("gerrit event not stored", "type", ev.Type, "project", ev.Project, "err", err)
			rw.Header().Set("Retry-After", "5")
			w.answer(rw, http.StatusServiceUnavailable, webhookAnswer{Error: "event not stored, retry later"})
			return
		}
		w.answer(rw, http.StatusAccepted, webhookAnswer{Status: "stored", Type: string(ev.Type)})
		return
	}
	select {
	case w.queue <- ev:
		w.answer(rw, http.StatusAccepted, webhookAnswer{Status: "queued", Type: string(ev.Type)})
	default:
		w.log.Warn("gerrit webhook queue full", "type", ev.Type, "project", ev.Project)
		rw.Header().Set("Retry-After", "5")
		w.answer(rw, http.StatusServiceUnavailable, webhookAnswer{Error: "event queue full, retry later"})
	}
}

// Run sends the received events to out, in the order they were queued,
// until ctx ends.
func (w *Webhook) Run(ctx context.Context, out chan<- Event) error {
	for {
		select {
		case ev := <-w.queue:
			if send(ctx, out, ev) != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}
