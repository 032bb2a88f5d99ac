package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterApp is an app that keeps its streams on three replicas of the
// cluster listed in urls, and publishes one result per input with a
// message id derived from the input.
const clusterApp = `modules:
  - name: bus
    type: eventbus.broker
    config:
      urls: [%s]
  - name: inputs
    type: eventbus.stream
    config: { name: INPUTS, subjects: ["in.>"], num_replicas: 3 }
  - name: results
    type: eventbus.stream
    config: { name: RESULTS, subjects: ["out.>"], num_replicas: 3 }
  - name: worker
    type: eventbus.consumer
    config: { stream_name: INPUTS }
pipelines:
  forward:
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: worker, concurrency: 4 }
    steps:
      - name: result
        type: step.eventbus.publish
        config: { subject: 'out.{{ .sequence }}', payload: '{{ .payload }}', msg_id: 'out-{{ .sequence }}' }
`

// urlsLine is the line `eventbus server --cluster` prints once the cluster
// takes streams.
var urlsLine = regexp.MustCompile(`^urls: (\S+)$`)

// The local cluster of the README: `eventbus server --cluster 3` in one
// process, an app listing its urls in another. Every input reaches the app
// and leaves one result on three replicas; an interrupt stops both with
// exit 0.
func TestLocalCluster(t *testing.T) {
	t.Parallel()
	ctx := guard(t, testGuard)
	const inputs = 200

	server := exec.Command(eventbusBin, "--log-format", "json", "server", "--cluster", "3",
		"--port", "-1", "--cluster-port", "-1", "--store-dir", t.TempDir())
	server.Env = baseEnv()
	out, logs := newLineLog(), newLineLog()
	stdout, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := server.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		done := make(chan struct{})
		go func() {
			logs.readFrom(stderr)
			close(done)
		}()
		out.readFrom(stdout)
		<-done
		waitErr = server.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = server.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server output:\n%s\nserver log:\n%s", out, logs)
		}
	})
	urls := waitLine(t, ctx, out, urlsLine)[1]

	file := filepath.Join(t.TempDir(), "app.yaml")
	list := strings.ReplaceAll(urls, ",", ", ")
	if err := os.WriteFile(file, fmt.Appendf(nil, clusterApp, list), 0o600); err != nil {
		t.Fatal(err)
	}
	app := startApp(t, file, appConfig{})

	nc, err := nats.Connect(urls, nats.Name(t.Name()), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range inputs {
		publishOnce(t, ctx, js, fmt.Sprintf("in.%d", i), fmt.Sprintf("input-%d", i), fmt.Sprintf("in-%d", i))
	}
	results := readStream(t, ctx, js, "RESULTS", "out.>", inputs)
	seen := map[string]bool{}
	for _, m := range results {
		seen[string(m.Data())] = true
	}
	t.Logf("inputs=%d results=%d distinct=%d", inputs, len(results), len(seen))
	if len(seen) != inputs {
		t.Errorf("%d distinct results of %d inputs", len(seen), inputs)
	}
	for _, name := range []string{"INPUTS", "RESULTS"} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			t.Errorf("stream %s: %d replicas, cluster %+v; want 3 replicas with a leader", name, info.Config.Replicas, info.Cluster)
		}
	}

	app.signal(t, syscall.SIGINT)
	if code := app.wait(t, ctx); code != 0 {
		t.Errorf("app exited %d after an interrupt, want 0", code)
	}
	if err := server.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("server --cluster 3 after an interrupt: %v, want exit 0", waitErr)
		}
	case <-ctx.Done():
		t.Fatal("server --cluster 3 did not exit after an interrupt")
	}
}

// publishOnce publishes data to subject with message id id, trying again
// while a replicated stream's subjects are still reaching every server of
// the cluster; the id keeps a retry from storing the message twice.
func publishOnce(t *testing.T, ctx context.Context, js jetstream.JetStream, subject, data, id string) {
	t.Helper()
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.Publish(actx, subject, []byte(data), jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("publish %s %s: %v", subject, data, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitLine returns the submatches of the first line of l that re matches,
// waiting for it until ctx ends or the output ends.
func waitLine(t *testing.T, ctx context.Context, l *lineLog, re *regexp.Regexp) []string {
	t.Helper()
	seen := 0
	for {
		l.mu.Lock()
		lines := l.lines[seen:]
		seen = len(l.lines)
		closed, changed := l.closed, l.changed
		l.mu.Unlock()
		for _, line := range lines {
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		}
		if closed {
			t.Fatalf("output ended before a line matched %s:\n%s", re, l)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("no line matched %s: %v\n%s", re, ctx.Err(), l)
		}
	}
}
