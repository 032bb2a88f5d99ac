package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus/embedded"
)

var (
	// clusterURLs matches the line server --cluster prints once the
	// cluster takes streams.
	clusterURLs = regexp.MustCompile(`(?m)^urls: (\S+)$`)
	// clusterServer matches the line server --cluster prints per server.
	clusterServer = regexp.MustCompile(`(?m)^  (eventbus-\d+)  (nats://127\.0\.0\.1:\d+)  store (\S+)$`)
)

// server --cluster 3 runs a cluster that takes R3 streams, prints the urls
// an app lists, and stops cleanly with exit 0, each server having kept its
// streams in a directory of its own.
func TestServerCluster(t *testing.T) {
	t.Parallel()
	storeDir := filepath.Join(t.TempDir(), "store")
	srv := startCLI(t, nil, "server", "--cluster", "3", "--port", "-1", "--cluster-port", "-1", "--store-dir", storeDir)
	urls := srv.stdout.waitFor(t, clusterURLs, srv.done)[1]

	servers := clusterServer.FindAllStringSubmatch(srv.stdout.String(), -1)
	if len(servers) != 3 {
		t.Fatalf("server lines %q, want 3 in\n%s", servers, srv.stdout.String())
	}
	var listed, names []string
	for i, s := range servers {
		names = append(names, s[1])
		if want := fmt.Sprintf("eventbus-%d", i); s[1] != want {
			t.Errorf("server %d is called %s, want %s", i, s[1], want)
		}
		if want := filepath.Join(storeDir, s[1]); s[3] != want {
			t.Errorf("server %s stores in %s, want %s", s[1], s[3], want)
		}
		listed = append(listed, s[2])
	}
	if strings.Join(listed, ",") != urls {
		t.Errorf("urls %s, want the servers' URLs %q", urls, listed)
	}

	_, js := jetStreamClient(t, urls)
	ctx := t.Context()
	if _, err := embedded.CreateStream(ctx, js, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: 3}); err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	waitStreamLeader(t, js, "ORDERS")
	res := runCLI(t, nil, "", "pub", "orders.created", "x", "--url", urls)
	if res.code != 0 || res.stdout != "published to ORDERS seq 1\n" {
		t.Fatalf("pub: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	row := waitStreamRow(t, urls, "ORDERS", func(row []string) bool { return row[7] == "-" })
	if row[2] != "1" || row[5] != "3" || !slices.Contains(names, row[6]) {
		t.Errorf("ORDERS row %v, want 1 message, 3 replicas and a leader", row)
	}

	res = srv.stop(t)
	if res.code != 0 || res.err != nil {
		t.Fatalf("server: exit %d, err %v, stderr %q", res.code, res.err, res.stderr)
	}
	if !strings.Contains(res.stderr, "eventbus cluster stopped") {
		t.Errorf("stderr %q does not report the stop", res.stderr)
	}
	for _, s := range servers {
		if entries, err := os.ReadDir(filepath.Join(s[3], "jetstream")); err != nil || len(entries) == 0 {
			t.Errorf("server %s stored nothing in %s: %v", s[1], s[3], err)
		}
	}
	if res = runCLI(t, nil, "", "streams", "--url", urls); !errors.Is(res.err, errNoServer) {
		t.Errorf("after stop, streams: exit %d, err %v; want errNoServer", res.code, res.err)
	}
}

// Flags that cannot make a cluster are usage errors, exit 2, and start
// nothing.
func TestServerClusterUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "one server", args: []string{"--cluster", "1"}, want: "--cluster must be at least 2"},
		{name: "negative", args: []string{"--cluster", "-3"}, want: "--cluster must be at least 2"},
		{name: "memory", args: []string{"--cluster", "3", "--memory"}, want: "--memory and --cluster are alternatives"},
		{name: "cluster port without cluster", args: []string{"--cluster-port", "7000"}, want: "--cluster-port needs --cluster"},
		{name: "cluster port zero", args: []string{"--cluster", "3", "--cluster-port", "0"}, want: "--cluster-port must be between"},
		{name: "ports overlap", args: []string{"--cluster", "3", "--port", "7000", "--cluster-port", "7001"}, want: "overlap"},
		{name: "not loopback", args: []string{"--cluster", "3", "--host", "0.0.0.0"}, want: "not a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"server", "--store-dir", t.TempDir()}, tt.args...)
			res := runCLI(t, nil, "", args...)
			if res.code != 2 || !errors.Is(res.err, errUsage) || !strings.Contains(res.stderr, tt.want) {
				t.Fatalf("exit %d, err %v, stderr %q; want exit 2 naming %q", res.code, res.err, res.stderr, tt.want)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing", res.stdout)
			}
		})
	}
}

// streams shows each stream's replicas, its leader and the replicas behind
// it: a stopped server's replica is offline until it is back and caught up.
func TestStreamsCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	c, err := embedded.StartCluster(ctx, embedded.ClusterConfig{
		StoreDir: t.TempDir(), Port: embedded.RandomPort, ClusterPort: embedded.RandomPort,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	urls := c.URLs()
	_, js := jetStreamClient(t, urls)
	if _, err := embedded.CreateStream(ctx, js, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	createStream(t, js, "R1", "r1.>")
	// The leader takes publishes once every server routes the subject to
	// it: before, a publish can find nothing listening.
	if _, err := c.WaitStreamPublishable(ctx, "R3", "r3.a"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "r3.a", []byte("x")); err != nil {
		t.Fatal(err)
	}

	leader, err := c.WaitStreamCurrent(ctx, "R3")
	if err != nil {
		t.Fatal(err)
	}
	row := waitStreamRow(t, urls, "R3", func(row []string) bool { return row[7] == "-" })
	if row[5] != "3" || row[6] != leader {
		t.Errorf("R3 row %v, want 3 replicas led by %s", row, leader)
	}
	if row := waitStreamRow(t, urls, "R1", func([]string) bool { return true }); row[5] != "1" || row[7] != "-" || !slices.Contains(c.Names(), row[6]) {
		t.Errorf("R1 row %v, want 1 replica on a server of the cluster, none lagging", row)
	}

	follower := c.Names()[0]
	if follower == leader {
		follower = c.Names()[1]
	}
	t.Logf("PHASE stop %s (leader %s)", follower, leader)
	if err := c.Stop(ctx, follower); err != nil {
		t.Fatal(err)
	}
	waitStreamRow(t, urls, "R3", func(row []string) bool { return row[6] == leader && row[7] == follower+"(offline)" })

	t.Logf("PHASE start")
	if err := c.Start(ctx, follower); err != nil {
		t.Fatal(err)
	}
	waitStreamRow(t, urls, "R3", func(row []string) bool { return row[6] != "none" && row[7] == "-" })
}

// waitStreamRow runs streams until the row of stream satisfies ok, and
// returns that row; it fails the test if that does not happen within the
// hang guard.
func waitStreamRow(t *testing.T, urls, stream string, ok func(row []string) bool) []string {
	t.Helper()
	guard := time.After(hangGuard)
	var last string
	for {
		res := runCLI(t, nil, "", "streams", "--url", urls)
		last = res.stdout + res.stderr
		if res.code == 0 {
			if row, found := findRow(tableRows(res.stdout), stream); found && ok(row) {
				return row
			}
		}
		select {
		case <-guard:
			t.Fatalf("streams never showed the expected %s row; last output:\n%s", stream, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitStreamLeader waits until stream has elected a leader, which takes its
// publishes: a replicated stream elects one after it is created.
func waitStreamLeader(t *testing.T, js jetstream.JetStream, stream string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream %s elected no leader: %v", stream, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
