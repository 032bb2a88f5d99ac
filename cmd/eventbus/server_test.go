package main

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// listening matches the line server prints once clients can connect.
var listening = regexp.MustCompile(`eventbus server listening on (nats://127\.0\.0\.1:\d+) \(([^)]*)\)\n`)

// server serves clients until its context is cancelled, then stops cleanly
// with exit 0 and releases its port.
func TestServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		memory  bool
		storage jetstream.StorageType
	}{
		{name: "file store", storage: jetstream.FileStorage},
		{name: "memory only", memory: true, storage: jetstream.MemoryStorage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			storeDir := filepath.Join(t.TempDir(), "store")
			args := []string{"server", "--port", "-1", "--store-dir", storeDir}
			wantStore := "store " + storeDir
			if tt.memory {
				args = append(args, "--memory")
				wantStore = "memory only"
			}
			srv := startCLI(t, nil, args...)
			m := srv.stdout.waitFor(t, listening, srv.done)
			serverURL, store := m[1], m[2]
			if store != wantStore {
				t.Errorf("server announced (%s), want (%s)", store, wantStore)
			}

			_, js := jetStreamClient(t, serverURL)
			ctx := t.Context()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: tt.storage,
			}); err != nil {
				t.Fatalf("create stream: %v", err)
			}
			res := runCLI(t, nil, "", "pub", "orders.created", "x", "--url", serverURL)
			if res.code != 0 || res.stdout != "published to ORDERS seq 1\n" {
				t.Fatalf("pub: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
			}

			res = srv.stop(t)
			if res.code != 0 || res.err != nil {
				t.Fatalf("server: exit %d, err %v, stderr %q", res.code, res.err, res.stderr)
			}
			if !strings.Contains(res.stderr, "eventbus server stopped") {
				t.Errorf("stderr %q does not report the stop", res.stderr)
			}
			if res = runCLI(t, nil, "", "streams", "--url", serverURL); !errors.Is(res.err, errNoServer) {
				t.Errorf("after stop, streams: exit %d, err %v; want errNoServer", res.code, res.err)
			}

			entries, err := os.ReadDir(storeDir)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if wrote := len(entries) > 0; wrote == tt.memory {
				t.Errorf("store dir has %d entries with memory=%v", len(entries), tt.memory)
			}
		})
	}
}

// A port that is taken is a plain error naming the address, exit 1.
func TestServerPortInUse(t *testing.T) {
	t.Parallel()
	taken, err := url.Parse(startNATS(t, true))
	if err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, nil, "", "server", "--memory", "--port", taken.Port(), "--store-dir", t.TempDir())
	if res.code != 1 {
		t.Fatalf("exit %d, err %v; want 1", res.code, res.err)
	}
	if want := "127.0.0.1:" + taken.Port(); !strings.Contains(res.stderr, want) {
		t.Errorf("stderr %q does not name %s", res.stderr, want)
	}
	if strings.Contains(res.stdout, "listening") {
		t.Errorf("stdout %q announces a server that did not start", res.stdout)
	}
}
