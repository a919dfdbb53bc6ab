package s3test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is an HTTP proxy in front of an S3 endpoint that injects faults a
// stopped or frozen server does not show: slow answers (Delay), requests
// that are read but never answered (Hang), refused connections (Refuse) and
// transient server errors (FailNext). It counts the requests it receives,
// so it also tells how many requests another process (a pbsfs mount) sent.
//
// The zero mode passes everything through. Modes change at any time and
// apply to requests that arrive afterwards (a Hang also holds the requests
// already waiting until Pass or the client gives up).
type Proxy struct {
	target *url.URL
	rp     *httputil.ReverseProxy
	addr   string // host:port, kept across Refuse/Pass

	mu       sync.Mutex
	ln       net.Listener // nil while refusing
	srv      *http.Server
	delay    time.Duration
	hang     chan struct{} // non-nil while hanging; closed by Pass
	failLeft int
	failCode int

	requests atomic.Int64
}

// NewProxy starts a proxy to endpoint (http://HOST:PORT) on a free port of
// 127.0.0.1. Close it when done.
func NewProxy(endpoint string) (*Proxy, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("s3test proxy: endpoint %q: want http://HOST:PORT", endpoint)
	}
	p := &Proxy{target: u}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.ErrorLog = log.New(io.Discard, "", 0) // abandoned requests are the point
	// The Host header goes through as the client signed it (the proxy's
	// address): SingleHostReverseProxy rewrites only the URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	return p, nil
}

// Endpoint is the proxy's URL, to give to clients instead of the server's.
func (p *Proxy) Endpoint() string { return "http://" + p.addr }

// Requests is how many requests reached the proxy (refused connections
// carry none).
func (p *Proxy) Requests() int64 { return p.requests.Load() }

func (p *Proxy) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(p.handle), ErrorLog: log.New(io.Discard, "", 0)}
	p.ln, p.srv = ln, srv
	go func() { _ = srv.Serve(ln) }()
}

func (p *Proxy) handle(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.mu.Lock()
	delay, hang := p.delay, p.hang
	fail := 0
	if p.failLeft > 0 {
		p.failLeft--
		fail = p.failCode
	}
	p.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return // the client gave up: never answered
		}
	}
	if fail != 0 {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(fail)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by s3test.Proxy</Message></Error>`, codeOf(fail))
		}
		return
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

// codeOf is the S3 error code servers send with a status.
func codeOf(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "SlowDown"
	case http.StatusInternalServerError:
		return "InternalError"
	}
	return http.StatusText(status)
}

// Pass ends every fault: requests go through at once, hung ones included,
// and connections are accepted again after Refuse.
func (p *Proxy) Pass() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay, p.failLeft = 0, 0
	if p.hang != nil {
		close(p.hang)
		p.hang = nil
	}
	if p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("s3test proxy: listen again on %s: %w", p.addr, err)
		}
		p.serve(ln)
	}
	return nil
}

// Delay makes every request wait d before it is forwarded.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// Hang reads requests and never answers them (until Pass): a server that
// accepts connections and then stalls.
func (p *Proxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hang == nil {
		p.hang = make(chan struct{})
	}
}

// FailNext answers the next n requests with status (e.g. 503 SlowDown, a
// transient error a client retries) instead of forwarding them.
func (p *Proxy) FailNext(n, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failLeft, p.failCode = n, status
}

// Refuse closes the listening socket and every open connection: new
// connections are refused (ECONNREFUSED) until Pass, as with an endpoint
// whose server is gone.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

func (p *Proxy) closeLocked() {
	if p.srv == nil {
		return
	}
	_ = p.srv.Close()
	p.ln, p.srv = nil, nil
}

// Close ends the proxy, releasing hung requests first.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hang != nil {
		close(p.hang)
		p.hang = nil
	}
	p.closeLocked()
}

// WaitIdle waits until no request has arrived for quiet (the client has
// sent everything it will), up to ctx. For counting another process's
// requests after a workload.
func (p *Proxy) WaitIdle(ctx context.Context, quiet time.Duration) error {
	last := p.Requests()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quiet):
		}
		n := p.Requests()
		if n == last {
			return nil
		}
		last = n
	}
}
