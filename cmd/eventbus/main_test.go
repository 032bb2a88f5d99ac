package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus/embedded"
)

// hangGuard bounds every wait in these tests so that a broken command fails
// the test instead of hanging it; no assertion depends on it.
const hangGuard = 20 * time.Second

// result is what one command line produced.
type result struct {
	code   int
	err    error
	stdout string
	stderr string
}

// syncBuffer is an output writer that tests can read while a command is
// still writing to it, and wait on.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	select {
	case b.written <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor returns the submatches of re once the output matches it. It fails
// the test if the command finishes (done closes) or the hang guard expires
// first.
func (b *syncBuffer) waitFor(t *testing.T, re *regexp.Regexp, done <-chan struct{}) []string {
	t.Helper()
	guard := time.After(hangGuard)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		select {
		case <-b.written:
		case <-done:
			if m := re.FindStringSubmatch(b.String()); m != nil {
				return m
			}
			t.Fatalf("command ended before its output matched %q; output:\n%s", re, b.String())
		case <-guard:
			t.Fatalf("output never matched %q; output:\n%s", re, b.String())
		}
	}
}

// testDeps returns deps writing to fresh buffers, reading stdin from the
// given text and looking environment variables up in env only.
func testDeps(env map[string]string, stdin string) (deps, *syncBuffer, *syncBuffer) {
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	return deps{
		stdin:  strings.NewReader(stdin),
		stdout: stdout,
		stderr: stderr,
		lookupEnv: func(key string) (string, bool) {
			v, ok := env[key]
			return v, ok
		},
		version: version,
	}, stdout, stderr
}

// runCLI runs one command line in-process to completion, exactly as
// execute does, and keeps the error for errors.Is checks.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	d, stdout, stderr := testDeps(env, stdin)
	root := newRootCmd(d)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	code := report(ctx, d.stderr, err)
	return result{code: code, err: err, stdout: stdout.String(), stderr: stderr.String()}
}

// running is a command line running in the background.
type running struct {
	stdout *syncBuffer
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	res    result
}

// startCLI runs a command line in the background until it ends or stop is
// called.
func startCLI(t *testing.T, env map[string]string, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	d, stdout, stderr := testDeps(env, "")
	r := &running{stdout: stdout, stderr: stderr, cancel: cancel, done: make(chan struct{})}
	root := newRootCmd(d)
	root.SetArgs(args)
	go func() {
		defer close(r.done)
		err := root.ExecuteContext(ctx)
		r.res = result{code: report(ctx, d.stderr, err), err: err}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// wait waits for the command to end and returns what it produced.
func (r *running) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(hangGuard + 5*time.Second):
		t.Fatal("command did not end")
	}
	res := r.res
	res.stdout, res.stderr = r.stdout.String(), r.stderr.String()
	return res
}

// stop cancels the command's context, as an interrupt does, and waits for
// it to end.
func (r *running) stop(t *testing.T) result {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

// startNATS runs a NATS server on a random loopback port, with JetStream
// storing in a temporary directory unless noJetStream, and returns its URL.
func startNATS(t *testing.T, noJetStream bool) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: !noJetStream,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		t.Fatalf("new NATS server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(hangGuard) {
		t.Fatal("NATS server not ready")
	}
	return s.ClientURL()
}

// jetStreamClient connects to url and returns a JetStream handle, closed
// when the test ends.
func jetStreamClient(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// createStream declares a file stream capturing subjects, asking again
// while a cluster loses the answer.
func createStream(t *testing.T, js jetstream.JetStream, name string, subjects ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	if _, err := embedded.CreateStream(ctx, js, jetstream.StreamConfig{Name: name, Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
}

// unusedURL returns a loopback NATS URL nothing listens on: the port was
// free a moment ago and is closed again.
func unusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return "nats://127.0.0.1:" + strconv.Itoa(port)
}
