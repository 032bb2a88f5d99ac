package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/internal/natsproc"
)

// clusterGuard bounds everything a test on a cluster of nats-server
// processes waits for; no assertion depends on it.
const clusterGuard = 8 * time.Minute

// startNATSCluster runs three nats-server processes as one JetStream
// cluster, stopped when the test ends, and returns it with a JetStream
// client that knows every server and reconnects forever.
func startNATSCluster(t *testing.T, name string) (*natsproc.Cluster, jetstream.JetStream) {
	t.Helper()
	c := natsproc.StartCluster(t, natsproc.ClusterConfig{Bin: natsproc.Build(t), Name: name})
	nc, err := nats.Connect(c.URLs(), nats.Name(t.Name()), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return c, js
}

// clusterURLs returns the servers' URLs as an app's broker urls list.
func clusterURLs(c *natsproc.Cluster) string {
	return strings.Join(c.ClientURLs(), ", ")
}

// publishInputs stores n messages on subject, with payloads and message
// ids <prefix>-<i>: all at once, then one by one again for any that failed
// (the id keeps a second attempt from storing a message twice).
func publishInputs(t *testing.T, ctx context.Context, js jetstream.JetStream, subject, prefix string, n int) {
	t.Helper()
	publishRange(t, ctx, js, subject, prefix, 0, n)
}

// publishRange is publishInputs for the messages numbered from to to-1.
func publishRange(t *testing.T, ctx context.Context, js jetstream.JetStream, subject, prefix string, from, to int) {
	t.Helper()
	futures := make([]jetstream.PubAckFuture, to-from)
	for i := range futures {
		id := fmt.Sprintf("%s-%d", prefix, from+i)
		futures[i], _ = js.PublishAsync(subject, []byte(id), jetstream.WithMsgID(id))
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatalf("publish %d inputs: %v", to-from, ctx.Err())
	}
	for i, f := range futures {
		if f != nil {
			select {
			case <-f.Ok():
				continue
			case <-f.Err():
			}
		}
		id := fmt.Sprintf("%s-%d", prefix, from+i)
		publishOnce(t, ctx, js, subject, id, id)
	}
}

// subjectMsgs returns how many messages stream holds on subject.
func subjectMsgs(ctx context.Context, js jetstream.JetStream, stream, subject string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// streamLeader returns the server leading stream.
func streamLeader(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	if cl := s.CachedInfo().Cluster; cl != nil && cl.Leader != "" {
		return cl.Leader, nil
	}
	return "", fmt.Errorf("stream %s has no leader", stream)
}

// consumerLeader returns the server leading stream's durable consumer.
func consumerLeader(ctx context.Context, js jetstream.JetStream, stream, consumer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return "", err
	}
	if cl := c.CachedInfo().Cluster; cl != nil && cl.Leader != "" {
		return cl.Leader, nil
	}
	return "", fmt.Errorf("consumer %s/%s has no leader", stream, consumer)
}

// waitValue polls get until it succeeds and returns its value; the test
// fails if ctx ends first.
func waitValue[T any](t *testing.T, ctx context.Context, what string, get func(context.Context) (T, error)) T {
	t.Helper()
	var v T
	eventually(t, ctx, what, func() (bool, string) {
		var err error
		v, err = get(ctx)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return v
}

// connectedServer returns the server the broker called broker is
// connected to, as an app's metrics say, and its reconnect count.
func connectedServer(ctx context.Context, metricsURL, broker string) (server string, reconnects float64, err error) {
	body, err := scrape(ctx, metricsURL)
	if err != nil {
		return "", 0, err
	}
	prefix := `eventbus_broker_connected{broker="` + broker + `",server="`
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		name, value, _ := strings.Cut(rest, `"} `)
		if value == "1" {
			server = name
		}
	}
	reconnects, ok := sample(body, "eventbus_broker_reconnects_total", map[string]string{"broker": broker})
	if !ok {
		return "", 0, fmt.Errorf("no eventbus_broker_reconnects_total of broker %s", broker)
	}
	if server == "" {
		return "", reconnects, fmt.Errorf("broker %s is not connected", broker)
	}
	return server, reconnects, nil
}
