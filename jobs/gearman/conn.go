package gearman

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// conn is one TCP connection to a job server: writes are serialised, a
// single reader reads.
type conn struct {
	addr string
	nc   net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
}

func dial(ctx context.Context, addr string) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gearman %s: connect: %w", addr, err)
	}
	return &conn{addr: addr, nc: nc, r: bufio.NewReaderSize(nc, 64<<10)}, nil
}

// send writes packets in one write.
func (c *conn) send(ps ...Packet) error {
	var buf []byte
	for _, p := range ps {
		b, err := p.MarshalBinary()
		if err != nil {
			return fmt.Errorf("gearman %s: %w", c.addr, err)
		}
		buf = append(buf, b...)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.nc.Write(buf); err != nil {
		return fmt.Errorf("gearman %s: send %s: %w", c.addr, ps[0].Type, err)
	}
	return nil
}

// read reads the next packet, which must be a response.
func (c *conn) read() (Packet, error) {
	p, err := ReadPacket(c.r)
	if err != nil {
		return p, fmt.Errorf("gearman %s: %w", c.addr, err)
	}
	if p.Req {
		return p, fmt.Errorf("gearman %s: read %s: %w: a request from the server", c.addr, p.Type, ErrPacket)
	}
	return p, nil
}

func (c *conn) close() error { return c.nc.Close() }

// Backoff is the wait between reconnection attempts to one server: it
// doubles from Min to Max, with up to a quarter of jitter, and starts
// again at Min once a connection stayed up a second.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff waits 50 ms, then up to 5 s, between attempts.
var DefaultBackoff = Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}

func (b Backoff) next(d time.Duration) time.Duration {
	if d < b.Min {
		return b.Min
	}
	d *= 2
	if d > b.Max {
		d = b.Max
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) bool {
	d += time.Duration(rand.Int64N(int64(d)/4 + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// keepConnected calls serve with a fresh connection to addr until ctx
// ends, waiting per b between attempts; serve returns when the
// connection is no use any more.
func keepConnected(ctx context.Context, addr string, b Backoff, log *slog.Logger, serve func(*conn) error) {
	var wait time.Duration
	for ctx.Err() == nil {
		c, err := dial(ctx, addr)
		if err == nil {
			stop := context.AfterFunc(ctx, func() { c.close() })
			start := time.Now()
			err = serve(c)
			stop()
			c.close()
			if time.Since(start) > time.Second {
				wait = 0
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			log.Warn("gearman connection lost", "server", addr, "err", err)
		}
		wait = b.next(wait)
		if !sleep(ctx, wait) {
			return
		}
	}
}
