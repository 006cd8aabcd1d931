package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/sluice-ci/sluice/internal/pgtest"
)

// cluster is a pgtest cluster run outside a test. pgtest wants a
// testing.TB to report to and to register the server's stop with; runT is
// that TB, and stop runs what was registered.
type cluster struct {
	dsn string
	t   *runT
}

// runT is the testing.TB of a program: Fatal and Skip end the call to
// pgtest (see startCluster), Cleanup registers with stop. A method pgtest
// does not call is left to the nil TB inside, and panics.
type runT struct {
	testing.TB
	ctx      context.Context
	log      io.Writer
	cleanups []func()
	failed   bool
}

// stopped is what Fatal and Skip panic with, for startCluster to recover.
type stopped struct {
	msg  string
	skip bool
}

func (t *runT) Helper()                  {}
func (t *runT) Name() string             { return "resultsbench" }
func (t *runT) Context() context.Context { return t.ctx }
func (t *runT) Cleanup(f func())         { t.cleanups = append(t.cleanups, f) }
func (t *runT) Failed() bool             { return t.failed }
func (t *runT) Log(args ...any)          { fmt.Fprintln(t.log, args...) }
func (t *runT) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, format+"\n", args...)
}
func (t *runT) Error(args ...any) { t.failed = true; t.Log(args...) }
func (t *runT) Errorf(format string, args ...any) {
	t.failed = true
	t.Logf(format, args...)
}
func (t *runT) Fatal(args ...any) { t.failed = true; panic(stopped{msg: fmt.Sprint(args...)}) }
func (t *runT) Fatalf(format string, args ...any) {
	t.failed = true
	panic(stopped{msg: fmt.Sprintf(format, args...)})
}
func (t *runT) FailNow()         { t.Fatal("FailNow") }
func (t *runT) Skip(args ...any) { panic(stopped{msg: fmt.Sprint(args...), skip: true}) }
func (t *runT) Skipf(format string, args ...any) {
	panic(stopped{msg: fmt.Sprintf(format, args...), skip: true})
}
func (t *runT) SkipNow() { t.Skip("SkipNow") }

// startCluster starts a pgtest cluster and creates an empty database in
// it. skipped is why it could not start when PostgreSQL is missing.
func startCluster(ctx context.Context, log io.Writer) (c *cluster, dsn, skipped string, err error) {
	c = &cluster{t: &runT{ctx: ctx, log: log}}
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		s, ok := r.(stopped)
		if !ok {
			panic(r)
		}
		c.stop()
		c = nil
		if s.skip {
			skipped = s.msg
			return
		}
		err = fmt.Errorf("start postgres: %s", s.msg)
	}()
	c.dsn = pgtest.Start(c.t)
	dsn = pgtest.NewDatabase(c.t, c.dsn)
	return c, dsn, "", nil
}

// stop stops the cluster and removes its directory.
func (c *cluster) stop() {
	for _, f := range slices.Backward(c.t.cleanups) {
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(stopped); !ok {
						panic(r)
					}
				}
			}()
			f()
		}()
	}
	c.t.cleanups = nil
}
