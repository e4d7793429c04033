package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// ErrNotLoopback is returned for a target outside 127.0.0.0/8, ::1 and
// localhost when remote targets are not allowed.
var ErrNotLoopback = errors.New("target is not loopback (pass -allow-remote to load another host)")

// checkTarget refuses a URL that is not ws:// or wss://, or that points away
// from this machine unless allowRemote is set.
func checkTarget(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse url %q: %w", raw, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("url %q: scheme must be ws or wss", raw)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("url %q: no host", raw)
	}
	if !allowRemote && !isLoopback(u.Hostname()) {
		return fmt.Errorf("url %q: %w", raw, ErrNotLoopback)
	}
	return nil
}

// checkListen refuses to listen away from loopback unless allowRemote is set.
// checkTargets checks a run's URLs: at least one, each on loopback unless
// allowRemote.
func checkTargets(urls []string, allowRemote bool) error {
	if len(urls) == 0 {
		return errors.New("no url")
	}
	for _, u := range urls {
		if err := checkTarget(u, allowRemote); err != nil {
			return err
		}
	}
	return nil
}

// dialDefaults fills the zero dial settings of a run's config.
func dialDefaults(timeout *time.Duration, sources, concurrency *int) {
	if *timeout <= 0 {
		*timeout = DefaultTimeout
	}
	if *sources <= 0 {
		*sources = 1
	}
	if *concurrency <= 0 {
		*concurrency = DefaultDialConcurrency
	}
}

func checkListen(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parse address %q: %w", addr, err)
	}
	if !allowRemote && !isLoopback(host) {
		return fmt.Errorf("listen on %q: %w", addr, ErrNotLoopback)
	}
	return nil
}

// isLoopback reports whether host is a loopback IP or "localhost". Other names
// are refused without resolving them: what they resolve to can change.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dialer opens WebSockets from a spread of loopback source addresses, so that
// each source brings its own range of ephemeral ports, and bounds how many
// handshakes run at once.
type dialer struct {
	clients []*http.Client
	slots   chan struct{}
}

// newDialer returns a dialer over sources addresses 127.0.0.1..127.0.0.<sources>
// (at least one) with at most concurrency handshakes in flight.
// The source addresses only bind for IPv4 targets; Go skips them for ::1.
func newDialer(sources, concurrency int, timeout time.Duration) *dialer {
	sources = min(max(sources, 1), 254)
	d := &dialer{slots: make(chan struct{}, max(concurrency, 1))}
	for i := range sources {
		nd := &net.Dialer{
			Timeout:   timeout,
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))},
		}
		d.clients = append(d.clients, &http.Client{Transport: &http.Transport{
			DialContext:         nd.DialContext,
			DisableKeepAlives:   true,
			TLSHandshakeTimeout: timeout,
		}})
	}
	return d
}

// dial opens a WebSocket to url from source address number n (modulo the count).
func (d *dialer) dial(ctx context.Context, url string, n int, timeout time.Duration) (*websocket.Conn, error) {
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-d.slots }()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: d.clients[n%len(d.clients)]})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	return conn, nil
}

// close releases the transports' idle connections.
func (d *dialer) close() {
	for _, c := range d.clients {
		c.CloseIdleConnections()
	}
}
