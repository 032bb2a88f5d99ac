package main

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Messages published with pub are counted by streams.
func TestPubThenStreams(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b cliBroker) {
		b.stream(t, "ORDERS", "orders.>")
		b.stream(t, "AUDIT", "audit.>")

		res := runCLI(t, nil, "", b.with("pub", "orders.created", `{"id":1}`, "--count", "3")...)
		if res.code != 0 {
			t.Fatalf("pub: exit %d, stderr %q", res.code, res.stderr)
		}
		want := "published to ORDERS seq 1\npublished to ORDERS seq 2\npublished to ORDERS seq 3\n"
		if res.stdout != want {
			t.Errorf("pub printed %q, want %q", res.stdout, want)
		}

		res = runCLI(t, b.env, "", append([]string{"streams"}, b.envArgs...)...)
		if res.code != 0 {
			t.Fatalf("streams: exit %d, stderr %q", res.code, res.stderr)
		}
		rows := tableRows(res.stdout)
		if got, want := rows[0], []string{"NAME", "SUBJECTS", "MESSAGES", "BYTES", "CONSUMERS", "REPLICAS", "LEADER", "LAGGING"}; !reflect.DeepEqual(got, want) {
			t.Errorf("header %v, want %v", got, want)
		}
		orders, ok := findRow(rows, "ORDERS")
		if !ok {
			t.Fatalf("no ORDERS row in\n%s", res.stdout)
		}
		if orders[1] != "orders.>" || orders[2] != "3" || orders[3] == "0" || orders[4] != "0" || orders[5] != "1" || orders[7] != "-" {
			t.Errorf("ORDERS row %v, want subjects orders.>, 3 messages, some bytes, 0 consumers, 1 replica, none lagging", orders)
		}
		audit, ok := findRow(rows, "AUDIT")
		if !ok || audit[2] != "0" || audit[3] != "0" {
			t.Errorf("AUDIT row %v (found %v), want 0 messages and 0 bytes", audit, ok)
		}
	})
}

func TestStreamsEmpty(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b cliBroker) {
		res := runCLI(t, nil, "", b.with("streams")...)
		if res.code != 0 || res.stdout != "no streams on "+b.shown+"\n" {
			t.Errorf("exit %d, stdout %q; want 0 and \"no streams on %s\"", res.code, res.stdout, b.shown)
		}
	})
}

// Headers, a message ID and a payload from stdin arrive as given; a repeated
// message ID is reported as a duplicate and not stored again.
func TestPubHeadersStdinAndDuplicate(t *testing.T) {
	t.Parallel()
	url := startNATS(t, false)
	_, js := jetStreamClient(t, url)
	createStream(t, js, "ORDERS", "orders.>")

	args := []string{"pub", "orders.created", "-", "--url", url,
		"--header", "trace=abc", "-H", "tag=a", "-H", "tag=b=c", "--msg-id", "order-1"}
	res := runCLI(t, nil, "line one\nline two\n", args...)
	if res.code != 0 || res.stdout != "published to ORDERS seq 1\n" {
		t.Fatalf("first pub: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, nil, "line one\nline two\n", args...)
	if res.code != 0 || res.stdout != "published to ORDERS seq 1 (duplicate)\n" {
		t.Fatalf("repeat pub: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, nil, "", "pub", "orders.empty", "--url", url)
	if res.code != 0 || res.stdout != "published to ORDERS seq 2\n" {
		t.Fatalf("empty pub: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	stream, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "line one\nline two\n" {
		t.Errorf("payload %q, want the stdin text", msg.Data)
	}
	wantHeader := map[string][]string{"trace": {"abc"}, "tag": {"a", "b=c"}, nats.MsgIdHdr: {"order-1"}}
	for k, want := range wantHeader {
		if got := msg.Header.Values(k); !reflect.DeepEqual(got, want) {
			t.Errorf("header %s = %v, want %v", k, got, want)
		}
	}
	empty, err := stream.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(empty.Data) != 0 || len(empty.Header) != 0 {
		t.Errorf("message without DATA stored payload %q and headers %v, want none", empty.Data, empty.Header)
	}
}

// Publishing where no stream listens fails, names the subject and says that
// no stream captures it, instead of timing out or vanishing.
func TestPubUnknownSubject(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b cliBroker) {
		b.stream(t, "ORDERS", "orders.>")
		subjects := []string{"invoices.created"}
		if nats := b.env["NATS_URL"]; nats != "" {
			// A plain subscriber on a subject takes the publish without
			// acknowledging it; that must not hide the missing stream
			// either.
			nc, _ := jetStreamClient(t, nats)
			if _, err := nc.SubscribeSync("watched.created"); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			subjects = append(subjects, "watched.created")
		}
		for _, subject := range subjects {
			res := runCLI(t, nil, "", b.with("pub", subject, "x", "--timeout", "300ms")...)
			if res.code != 1 || !errors.Is(res.err, errNoStream) {
				t.Fatalf("%s: exit %d, err %v; want exit 1 and errNoStream", subject, res.code, res.err)
			}
			for _, want := range []string{`"` + subject + `"`, "no stream captures"} {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr %q does not contain %q", res.stderr, want)
				}
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing", res.stdout)
			}
		}
	})
}

func TestParseHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []string
		want    nats.Header
		wantErr bool
	}{
		{name: "none", in: nil, want: nil},
		{name: "one", in: []string{"a=1"}, want: nats.Header{"a": {"1"}}},
		{name: "repeated key", in: []string{"a=1", "a=2"}, want: nats.Header{"a": {"1", "2"}}},
		{name: "value with equals", in: []string{"q=x=y"}, want: nats.Header{"q": {"x=y"}}},
		{name: "empty value", in: []string{"a="}, want: nats.Header{"a": {""}}},
		{name: "case kept", in: []string{"Trace-ID=7"}, want: nats.Header{"Trace-ID": {"7"}}},
		{name: "no equals", in: []string{"a"}, wantErr: true},
		{name: "empty key", in: []string{"=1"}, wantErr: true},
		{name: "colon in key", in: []string{"a:b=1"}, wantErr: true},
		{name: "space in key", in: []string{"a b=1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseHeaders(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseHeaders(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseHeaders(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// tableRows splits a whitespace-aligned table into its cells.
func tableRows(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

// findRow returns the row whose first cell is name.
func findRow(rows [][]string, name string) ([]string, bool) {
	for _, r := range rows {
		if len(r) == 8 && r[0] == name {
			return r, true
		}
	}
	return nil, false
}

// TestPubUnknownSubjectFailsAtOnce counts what pub sends to a subject no
// stream captures: the publish once, then the question which stream
// captures the subject; no second or third try of the publish in between.
func TestPubUnknownSubjectFailsAtOnce(t *testing.T) {
	t.Parallel()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(hangGuard) {
		t.Fatal("NATS server not ready")
	}
	_, js := jetStreamClient(t, s.ClientURL())
	createStream(t, js, "ORDERS", "orders.>")

	res := runCLI(t, nil, "", "pub", "invoices.created", "x", "--url", s.ClientURL())
	if res.code != 1 || !errors.Is(res.err, errNoStream) {
		t.Fatalf("exit %d, err %v; want exit 1 and errNoStream", res.code, res.err)
	}
	// The server files the connection among the closed ones once it has
	// seen it close.
	deadline := time.Now().Add(hangGuard)
	for {
		connz, err := s.Connz(&server.ConnzOptions{State: server.ConnClosed})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range connz.Conns {
			if c.Name == "eventbus-cli" {
				if c.InMsgs != 2 {
					t.Errorf("pub sent %d messages, want 2: the publish and the look-up of its stream", c.InMsgs)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the server saw no eventbus-cli connection close")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
