package main

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// sub prints a message published after it subscribed, then stops at --count.
func TestSubReceivesPublish(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b cliBroker) {
		b.stream(t, "GREETINGS", "greetings.>")
		if res := runCLI(t, nil, "", b.with("pub", "greetings.before", "earlier")...); res.code != 0 {
			t.Fatalf("pub: exit %d, stderr %q", res.code, res.stderr)
		}
		sub := startCLI(t, nil, b.with("sub", "greetings.*", "--count", "1")...)
		sub.stderr.waitFor(t, regexp.MustCompile(`listening on greetings\.\*`), sub.done)
		if res := runCLI(t, nil, "", b.with("pub", "greetings.hello", "hello world", "-H", "lang=en")...); res.code != 0 {
			t.Fatalf("pub: exit %d, stderr %q", res.code, res.stderr)
		}
		res := sub.wait(t)
		if res.code != 0 {
			t.Fatalf("sub: exit %d, err %v, stderr %q", res.code, res.err, res.stderr)
		}
		if want := "greetings.hello [lang: en] hello world\n"; res.stdout != want {
			t.Errorf("sub printed %q, want %q", res.stdout, want)
		}
	})
}

// An interrupt is how sub normally ends: exit 0, whatever it reads from.
func TestSubStopsOnInterrupt(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b cliBroker) {
		b.stream(t, "QUIET", "quiet.>")
		tests := []struct {
			name  string
			args  []string
			ready string
		}{
			{name: "subscription", args: []string{"sub", "quiet.subject"}, ready: `listening on quiet\.subject`},
			{name: "stream", args: []string{"sub", "quiet.subject", "--stream", "QUIET"}, ready: `reading quiet\.subject from stream QUIET`},
			{name: "durable", args: []string{"sub", "quiet.subject", "--durable", "q"}, ready: `reading quiet\.subject from stream QUIET`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				sub := startCLI(t, nil, b.with(tt.args...)...)
				sub.stderr.waitFor(t, regexp.MustCompile(tt.ready), sub.done)
				res := sub.stop(t)
				if res.code != 0 || res.err != nil || res.stdout != "" {
					t.Errorf("interrupted sub: exit %d, err %v, stdout %q; want 0, nil, nothing", res.code, res.err, res.stdout)
				}
			})
		}
	})
}

// With --stream, sub reads stored messages from the start; with --durable
// it acks what it prints, so the next run continues after it.
func TestSubFromStream(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b cliBroker) {
		b.stream(t, "ORDERS", "orders.>")
		for _, data := range []string{"first", "second", "third"} {
			if res := runCLI(t, nil, "", b.with("pub", "orders.created", data)...); res.code != 0 {
				t.Fatalf("pub %s: exit %d, stderr %q", data, res.code, res.stderr)
			}
		}
		if res := runCLI(t, nil, "", b.with("pub", "orders.cancelled", "other")...); res.code != 0 {
			t.Fatalf("pub: exit %d, stderr %q", res.code, res.stderr)
		}

		tests := []struct {
			name string
			args []string
			want string
		}{
			{
				name: "ordered from the start",
				args: []string{"sub", "orders.created", "--stream", "ORDERS", "--count", "2"},
				want: "#1 orders.created first\n#2 orders.created second\n",
			},
			{
				name: "last message",
				args: []string{"sub", "orders.>", "--stream", "ORDERS", "--deliver", "last", "--count", "1"},
				want: "#4 orders.cancelled other\n",
			},
			{
				name: "last of a subject",
				args: []string{"sub", "orders.created", "--stream", "ORDERS", "--deliver", "last", "--count", "1"},
				want: "#3 orders.created third\n",
			},
			{
				name: "durable first run, stream found from subject",
				args: []string{"sub", "orders.created", "--durable", "audit", "--count", "2"},
				want: "#1 orders.created first\n#2 orders.created second\n",
			},
			{
				name: "durable resumes after acked messages",
				args: []string{"sub", "orders.created", "--durable", "audit", "--count", "1"},
				want: "#3 orders.created third\n",
			},
		}
		// The durable cases depend on each other, so they run in order.
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := runCLI(t, nil, "", b.with(tt.args...)...)
				if res.code != 0 {
					t.Fatalf("exit %d, err %v", res.code, res.err)
				}
				if res.stdout != tt.want {
					t.Errorf("printed %q, want %q", res.stdout, tt.want)
				}
			})
		}
	})
}

func TestSubStreamErrors(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b cliBroker) {
		b.stream(t, "ORDERS", "orders.>")
		tests := []struct {
			name string
			args []string
			want error
		}{
			{name: "missing stream", args: []string{"sub", "orders.created", "--stream", "NOPE"}, want: errStreamNotFound},
			{name: "durable on uncaptured subject", args: []string{"sub", "invoices.created", "--durable", "d"}, want: errNoStream},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				res := runCLI(t, nil, "", b.with(tt.args...)...)
				if res.code != 1 || !errors.Is(res.err, tt.want) {
					t.Errorf("exit %d, err %v; want exit 1 and %v", res.code, res.err, tt.want)
				}
			})
		}
	})
}

func TestFormatMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		subject string
		seq     uint64
		header  nats.Header
		data    string
		want    string
	}{
		{name: "plain", subject: "a.b", data: `{"id":1}`, want: `a.b {"id":1}`},
		{name: "sequence", subject: "a.b", seq: 42, data: "x", want: "#42 a.b x"},
		{name: "headers sorted, repeated values", subject: "a.b", header: nats.Header{"z": {"1"}, "a": {"2", "3"}}, data: "x", want: "a.b [a: 2; a: 3; z: 1] x"},
		{name: "empty payload", subject: "a.b", data: "", want: `a.b ""`},
		{name: "multi-line payload", subject: "a.b", data: "one\ntwo", want: `a.b "one\ntwo"`},
		{name: "tab kept", subject: "a.b", data: "k\tv", want: "a.b k\tv"},
		{name: "binary payload", subject: "a.b", data: "\x00\xff", want: `a.b "\x00\xff"`},
		{name: "unicode kept", subject: "a.b", data: "héllo wörld", want: "a.b héllo wörld"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := formatMessage(tt.subject, tt.seq, tt.header, []byte(tt.data)); got != tt.want {
				t.Errorf("formatMessage = %q, want %q", got, tt.want)
			}
		})
	}
}

// A durable keeps where it starts: sub --durable without --deliver resumes
// one that exists, whatever its start, and --deliver asking for another
// start says what is wrong and what to do instead of the server's error.
func TestSubDurableStart(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testSubDurableStart)
}

func testSubDurableStart(t *testing.T, b cliBroker) {
	b.stream(t, "ORDERS", "orders.>")
	if res := runCLI(t, nil, "", b.with("pub", "orders.created", "before")...); res.code != 0 {
		t.Fatalf("pub: exit %d, stderr %q", res.code, res.stderr)
	}
	// A durable that starts with new messages.
	sub := startCLI(t, nil, b.with("sub", "orders.created", "--durable", "audit", "--deliver", "new")...)
	sub.stderr.waitFor(t, regexp.MustCompile(`reading orders\.created from stream ORDERS`), sub.done)
	if res := sub.stop(t); res.code != 0 || res.stdout != "" {
		t.Fatalf("first run: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	res := runCLI(t, nil, "", b.with("sub", "orders.created", "--durable", "audit", "--deliver", "all", "--count", "1")...)
	if res.code != 1 || !errors.Is(res.err, errDurableStart) {
		t.Fatalf("--deliver all on a durable that starts at new: exit %d, err %v; want exit 1 and errDurableStart", res.code, res.err)
	}
	for _, want := range []string{`durable "audit"`, "starts at new", "leave out --deliver", "new --durable name"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr %q does not say %q", res.stderr, want)
		}
	}
	if strings.Contains(res.stderr, "err_code") {
		t.Errorf("stderr %q shows the raw server error", res.stderr)
	}

	if res := runCLI(t, nil, "", b.with("pub", "orders.created", "after")...); res.code != 0 {
		t.Fatalf("pub: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, nil, "", b.with("sub", "orders.created", "--durable", "audit", "--count", "1")...)
	if res.code != 0 || !strings.HasSuffix(res.stdout, "orders.created after\n") {
		t.Fatalf("resuming the durable: exit %d, stdout %q, stderr %q; want the message published after it started", res.code, res.stdout, res.stderr)
	}
}
