package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

// cutProxy forwards TCP connections to a server. Armed with a pattern, it
// cuts the connection that sends it the moment the bytes holding it are
// through: the server gets the request, and its reply dies with the
// connection, as when a server or the network fails right after a request.
type cutProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	pattern []byte
	cuts    int
	conns   []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	var wg sync.WaitGroup
	wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

// arm makes the proxy cut the next connection that sends pattern.
func (p *cutProxy) arm(pattern string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pattern = []byte(pattern)
}

func (p *cutProxy) cutCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *cutProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go func() {
			_, _ = io.Copy(client, server)
			client.Close()
		}()
		go p.forward(client, server)
	}
}

// forward copies what the client sends to the server, watching for the
// armed pattern. A cut closes the client's side only: the server reads the
// request and answers into a connection nobody reads any more (it is closed
// when the test ends).
func (p *cutProxy) forward(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := client.Read(buf)
		if n > 0 {
			seen := append(tail, buf[:n]...)
			p.mu.Lock()
			hit := len(p.pattern) > 0 && bytes.Contains(seen, p.pattern)
			if hit {
				p.pattern = nil
				p.cuts++
			}
			p.mu.Unlock()
			if hit {
				// The client's side goes first, so that no answer can
				// reach it; then the server gets the request.
				client.Close()
				_, _ = server.Write(buf[:n])
				return
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				client.Close()
				return
			}
			tail = append(tail[:0], seen[max(0, len(seen)-256):]...)
		}
		if err != nil {
			server.Close()
			return
		}
	}
}

// TestRequestWhoseReplyIsLostIsRetried sends JetStream API requests whose
// connection is cut as soon as the server has them: each call must come
// back with its answer, retried on the new connection, long before the
// caller's deadline.
func TestRequestWhoseReplyIsLostIsRetried(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	proxy := newCutProxy(t, srv.ClientURL()[len("nats://"):])
	// The client must come back through the proxy, not to the address the
	// server advertises.
	b, nc := pinnedBus(t, proxy.url())

	calls := []struct {
		api string
		do  func(ctx context.Context) error
	}{
		{"STREAM.CREATE", func(ctx context.Context) error {
			_, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "LOST", Subjects: []string{"lost.>"}})
			return err
		}},
		{"CONSUMER.CREATE", func(ctx context.Context) error {
			_, err := b.EnsureConsumer(ctx, bus.ConsumerConfig{Stream: "LOST", Durable: "c"})
			return err
		}},
		{"STREAM.INFO", func(ctx context.Context) error {
			_, err := b.StreamInfo(ctx, "LOST")
			return err
		}},
		{"CONSUMER.INFO", func(ctx context.Context) error {
			_, err := b.ConsumerInfo(ctx, "LOST", "c")
			return err
		}},
		{"STREAM.LIST", func(ctx context.Context) error {
			_, err := b.Streams(ctx)
			return err
		}},
		{"CONSUMER.DELETE", func(ctx context.Context) error { return b.DeleteConsumer(ctx, "LOST", "c") }},
		{"STREAM.DELETE", func(ctx context.Context) error { return b.DeleteStream(ctx, "LOST") }},
	}
	for i, c := range calls {
		if err := waitConnected(ctx, nc); err != nil {
			t.Fatal(err)
		}
		proxy.arm("$JS.API." + c.api)
		if err := c.do(ctx); err != nil {
			t.Fatalf("%s with its reply lost: %v", c.api, err)
		}
		if got := proxy.cutCount(); got != i+1 {
			t.Fatalf("%s: the proxy cut %d connections, want %d: the request did not go through it", c.api, got, i+1)
		}
	}
	if _, err := b.StreamInfo(ctx, "LOST"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("StreamInfo after the delete = %v, want ErrNotFound", err)
	}
}

// waitConnected waits until nc is connected.
func waitConnected(ctx context.Context, nc *nats.Conn) error {
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// pinnedBus returns a bus, and its connection, connected to url alone,
// closed when t ends: it reconnects quickly and only there, never to the
// addresses the server advertises (a proxy's server, a cluster's other
// servers).
func pinnedBus(t *testing.T, url string) (*jetstream.Bus, *nats.Conn) {
	t.Helper()
	return connectBus(t, jetstream.ConnectConfig{URLs: []string{url}, Name: t.Name()}, []nats.Option{nats.IgnoreDiscoveredServers()})
}
