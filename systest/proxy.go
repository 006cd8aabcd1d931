package systest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ProxyAddr is where an environment's proxy listens, inside its own
// network namespace.
const ProxyAddr = "127.0.0.1:3142"

// proxyAPTConf makes apt use the proxy.
const proxyAPTConf = "/etc/apt/apt.conf.d/99sluice-proxy"

// Proxy lets an offline environment fetch from a few hosts: an HTTP
// proxy that listens on loopback inside the environment's network
// namespace and fetches from the host's network, plain http GET and HEAD
// to the allowed hosts only (a Debian mirror, so that apt can install
// dependencies the base lacks). Nothing else leaves the namespace.
type Proxy struct {
	// Allow are the hosts (host or host:port) requests may go to.
	Allow []string
}

// allowed says whether a request's host is allowed.
func (p *Proxy) allowed(host string) bool {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = host, "80"
	}
	return slices.ContainsFunc(p.Allow, func(a string) bool {
		return strings.EqualFold(a, h) && port == "80" || strings.EqualFold(a, net.JoinHostPort(h, port))
	})
}

// listenIn listens on addr inside the network namespace at nsPath, from
// a thread that enters it for the moment: the socket stays in that
// namespace, the rest of the process in its own.
func listenIn(nsPath, addr string) (net.Listener, error) {
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter %s: %w", nsPath, err)
	}
	l, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and ends with its goroutine.
		if l != nil {
			l.Close()
		}
		return nil, fmt.Errorf("leave %s: %w", nsPath, err)
	}
	runtime.UnlockOSThread()
	return l, lerr
}

// proxyServer is a running proxy.
type proxyServer struct {
	srv  *http.Server
	done chan struct{}
}

// startProxy serves p on a listener in the namespace at nsPath.
func startProxy(p *Proxy, nsPath string, log *slog.Logger) (*proxyServer, error) {
	l, err := listenIn(nsPath, ProxyAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			ResponseHeaderTimeout: 60 * time.Second, MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.URL.Scheme != "http" || !p.allowed(r.URL.Host) {
			http.Error(w, "sluice environment proxy: only GET and HEAD of http:// URLs on "+strings.Join(p.Allow, ", "), http.StatusForbidden)
			return
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, k := range []string{"Range", "If-Modified-Since", "If-Range", "If-None-Match", "Cache-Control", "User-Agent"} {
			if v := r.Header.Get(k); v != "" {
				out.Header.Set(k, v)
			}
		}
		resp, err := client.Do(out)
		if err != nil {
			log.Warn("environment proxy fetch", "url", r.URL.Redacted(), "err", err)
			http.Error(w, "sluice environment proxy: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for _, k := range []string{"Content-Type", "Content-Length", "Last-Modified", "ETag", "Content-Range", "Accept-Ranges", "Location"} {
			if v := resp.Header.Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	ps := &proxyServer{srv: &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: time.Minute}, done: make(chan struct{})}
	go func() {
		defer close(ps.done)
		if err := ps.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("environment proxy stopped", "err", err)
		}
	}()
	return ps, nil
}

// close stops the proxy and waits for it.
func (ps *proxyServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ps.srv.Shutdown(ctx); err != nil {
		ps.srv.Close()
	}
	<-ps.done
}
