package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

// TestPublishThroughLeaderChanges publishes 1,500 messages, one at a time
// and in batches, each with a msg id, while the stream's leader is stopped
// and started again and then the server the bus is connected to is
// restarted: every publish must succeed, and the stream must hold every
// message exactly once. The hang guard bounds each call and each wait for
// the next ack, not the whole run, whose length depends on how busy the
// machine is.
func TestPublishThroughLeaderChanges(t *testing.T) {
	t.Parallel()
	const (
		singles   = 500
		batches   = 50
		batchSize = 20
		total     = singles + batches*batchSize
	)
	c := startConformanceCluster(t)
	b, nc := clusterBus(t, c)
	ctx := testContext(t)
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "MOVE", Subjects: []string{"move.>"}, Replicas: 3, Storage: bus.StorageFile}); err != nil {
		t.Fatal(err)
	}

	var acked, duplicates atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, total)
	wg.Go(func() {
		for i := range singles {
			pctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			ack, err := b.Publish(pctx, bus.OutgoingMessage{Subject: "move.one", Payload: []byte("x"), MsgID: fmt.Sprintf("one-%d", i)})
			cancel()
			if err != nil {
				errs <- fmt.Errorf("Publish %d: %w", i, err)
				return
			}
			acked.Add(1)
			if ack.Duplicate {
				duplicates.Add(1)
			}
		}
	})
	wg.Go(func() {
		for n := range batches {
			msgs := make([]bus.OutgoingMessage, batchSize)
			for i := range msgs {
				msgs[i] = bus.OutgoingMessage{Subject: "move.batch", Payload: []byte("x"), MsgID: fmt.Sprintf("batch-%d-%d", n, i)}
			}
			pctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			results, err := b.PublishBatch(pctx, msgs)
			cancel()
			if err != nil {
				errs <- fmt.Errorf("PublishBatch %d: %w", n, err)
				return
			}
			for i, r := range results {
				if r.Err != nil {
					errs <- fmt.Errorf("PublishBatch %d, message %d: %w", n, i, r.Err)
					return
				}
				acked.Add(1)
				if r.Ack.Duplicate {
					duplicates.Add(1)
				}
			}
		}
	})

	waitAcked := func(n int64) {
		t.Helper()
		last, stalled := acked.Load(), time.Now().Add(hangGuard)
		for acked.Load() < n {
			if a := acked.Load(); a != last {
				last, stalled = a, time.Now().Add(hangGuard)
			}
			if time.Now().After(stalled) {
				t.Fatalf("no publish acked for %v: %d of %d acked", hangGuard, last, n)
			}
			select {
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	waitAcked(total / 4)
	leader, err := c.WaitStreamLeader(testContext(t), "MOVE")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(testContext(t), leader); err != nil {
		t.Fatal(err)
	}
	waitAcked(total / 2)
	if err := c.Start(testContext(t), leader); err != nil {
		t.Fatal(err)
	}
	own, err := c.ServerOf(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(testContext(t), own); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	ctx = testContext(t)
	if _, err := c.WaitStreamCurrent(ctx, "MOVE"); err != nil {
		t.Fatal(err)
	}
	info, err := b.StreamInfo(ctx, "MOVE")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("published=%d acked=%d acked-as-duplicate=%d stored=%d (stream leader %s stopped and started, server %s restarted)",
		total, acked.Load(), duplicates.Load(), info.Messages, leader, own)
	if info.Messages != total {
		t.Fatalf("the stream holds %d messages, want %d", info.Messages, total)
	}
}

// quorumLoss is a 3-node cluster with an R3 stream LOST and its consumer
// c, of which two servers are stopped: the one left, which the bus is
// connected to and stays connected to, leads neither the stream nor the
// consumer and cannot elect a leader for them alone; or, with
// leaderLeft, it leads both and cannot get a majority to store or settle
// anything.
type quorumLoss struct {
	c       *embedded.Cluster
	b       *jetstream.Bus
	stopped []string
	// held is a message fetched before the servers stopped, with an ack
	// wait long enough to settle it after they are back.
	held *bus.Message
}

func loseQuorum(t *testing.T, leaderLeft bool) *quorumLoss {
	t.Helper()
	ctx := testContext(t)
	c := startConformanceCluster(t)
	setup, setupConn := clusterBus(t, c)
	if _, err := setup.EnsureStream(ctx, bus.StreamConfig{Name: "LOST", Subjects: []string{"lost.>"}, Replicas: 3, Storage: bus.StorageFile}); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.EnsureConsumer(ctx, bus.ConsumerConfig{Stream: "LOST", Durable: "c", AckWait: time.Minute}); err != nil {
		t.Fatal(err)
	}
	streamLeader, err := c.WaitStreamLeader(ctx, "LOST")
	if err != nil {
		t.Fatal(err)
	}
	consumerLeader, err := c.WaitConsumerLeader(ctx, "LOST", "c")
	if err != nil {
		t.Fatal(err)
	}
	if leaderLeft && consumerLeader != streamLeader {
		consumerLeader = moveConsumerLeader(t, ctx, c, setupConn, "LOST", "c", streamLeader)
	}
	names := c.Names()
	left := slices.IndexFunc(names, func(n string) bool { return n != streamLeader && n != consumerLeader })
	if leaderLeft {
		left = slices.Index(names, streamLeader)
	}
	srv, err := c.Server(names[left])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pinnedBus(t, srv.ClientURL())
	if _, err := c.WaitStreamPublishable(ctx, "LOST", "lost.a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, bus.OutgoingMessage{Subject: "lost.a", Payload: []byte("held"), MsgID: "held"}); err != nil {
		t.Fatal(err)
	}
	msgs, err := b.Fetch(ctx, "LOST", "c", bus.FetchOptions{Batch: 1, MaxWait: hangGuard})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Fetch = %d messages, %v; want 1", len(msgs), err)
	}
	q := &quorumLoss{c: c, b: b, held: msgs[0]}
	for i, n := range names {
		if i == left {
			continue
		}
		if err := c.Stop(ctx, n); err != nil {
			t.Fatal(err)
		}
		q.stopped = append(q.stopped, n)
	}
	return q
}

// moveConsumerLeader has the leader of stream's consumer step down in
// favour of the server called to until that server leads it, and returns
// its name.
func moveConsumerLeader(t *testing.T, ctx context.Context, c *embedded.Cluster, nc *nats.Conn, stream, consumer, to string) string {
	t.Helper()
	subject := fmt.Sprintf("$JS.API.CONSUMER.LEADER.STEPDOWN.%s.%s", stream, consumer)
	body := fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, to)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		leader, err := c.WaitConsumerLeader(ctx, stream, consumer)
		if err != nil {
			t.Fatal(err)
		}
		if leader == to {
			return to
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := nc.RequestWithContext(rctx, subject, body)
		cancel()
		if err == nil && strings.Contains(string(resp.Data), `"error"`) {
			t.Fatalf("step down of %s/%s: %s", stream, consumer, resp.Data)
		}
		// Until the old leader has stepped down, or the request was lost.
		for l, err := c.ConsumerLeader(stream, consumer); err == nil && l == leader; l, err = c.ConsumerLeader(stream, consumer) {
			select {
			case <-ctx.Done():
				t.Fatalf("%s/%s still led by %s: %v", stream, consumer, leader, ctx.Err())
			case <-tick.C:
			}
		}
	}
}

// restore starts the stopped servers again.
func (q *quorumLoss) restore(t *testing.T) {
	t.Helper()
	ctx := testContext(t)
	for _, n := range q.stopped {
		if err := q.c.Start(ctx, n); err != nil {
			t.Error(err)
		}
	}
}

// TestPublishWithoutQuorum publishes to a stream two of whose three servers
// are down, one message and a batch: each publish must fail when its
// context ends, saying that the stream is unavailable, not that it does not
// exist. The settlement of a message fails the same way, and does not say
// that the consumer is gone. The server left either leads nothing (nothing
// answers) or leads the stream and the consumer (it takes the message and
// the ack, cannot store them, and answers a message sent again that it is
// still in process).
func TestPublishWithoutQuorum(t *testing.T) {
	t.Parallel()
	for _, leaderLeft := range []bool{false, true} {
		t.Run(fmt.Sprintf("leader_left=%v", leaderLeft), func(t *testing.T) {
			t.Parallel()
			testPublishWithoutQuorum(t, loseQuorum(t, leaderLeft))
		})
	}
}

func testPublishWithoutQuorum(t *testing.T, q *quorumLoss) {
	ctx, cancel := context.WithTimeout(testContext(t), 3*time.Second)
	defer cancel()
	_, err := q.b.Publish(ctx, bus.OutgoingMessage{Subject: "lost.a", Payload: []byte("x"), MsgID: "x"})
	t.Logf("Publish: %v", err)
	if !errors.Is(err, bus.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bus.ErrNoStream) {
		t.Errorf("Publish without a quorum = %v, want bus.ErrUnavailable and context.DeadlineExceeded", err)
	}
	if err == nil || !strings.Contains(err.Error(), `"lost.a"`) {
		t.Errorf("Publish without a quorum = %v, want it to name the subject", err)
	}
	bctx, cancel := context.WithTimeout(testContext(t), 3*time.Second)
	defer cancel()
	batch := []bus.OutgoingMessage{
		{Subject: "lost.b", Payload: []byte("1"), MsgID: "b-1"},
		{Subject: "lost.b", Payload: []byte("2"), MsgID: "b-2"},
	}
	results, err := q.b.PublishBatch(bctx, batch)
	t.Logf("PublishBatch: %v", err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PublishBatch without a quorum = %v, want context.DeadlineExceeded", err)
	}
	if len(results) != len(batch) {
		t.Fatalf("PublishBatch without a quorum returned %d results for %d messages", len(results), len(batch))
	}
	for i, r := range results {
		if !errors.Is(r.Err, bus.ErrUnavailable) || errors.Is(r.Err, bus.ErrNoStream) || !strings.Contains(fmt.Sprint(r.Err), `"lost.b"`) {
			t.Errorf("message %d of a batch without a quorum: %v, want bus.ErrUnavailable naming the subject", i, r.Err)
		}
	}
	actx, cancel := context.WithTimeout(testContext(t), 2*time.Second)
	defer cancel()
	err = q.held.Ack(actx)
	t.Logf("Ack: %v", err)
	if !errors.Is(err, bus.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bus.ErrNotFound) {
		t.Errorf("Ack without a quorum = %v, want bus.ErrUnavailable and context.DeadlineExceeded", err)
	}
}

// TestPublishAndAckWaitForQuorum publishes, one message and a batch, and
// acks a message while two of the stream's three servers are down, then
// starts them: every call must succeed once the stream and its consumer
// have leaders again, each message stored once and the ack applied. The
// server left leads nothing, or leads the stream and the consumer and holds
// what it took until the others are back.
func TestPublishAndAckWaitForQuorum(t *testing.T) {
	t.Parallel()
	for _, leaderLeft := range []bool{false, true} {
		t.Run(fmt.Sprintf("leader_left=%v", leaderLeft), func(t *testing.T) {
			t.Parallel()
			testPublishAndAckWaitForQuorum(t, loseQuorum(t, leaderLeft))
		})
	}
}

func testPublishAndAckWaitForQuorum(t *testing.T, q *quorumLoss) {
	ctx := testContext(t)
	var wg sync.WaitGroup
	var pubErr, batchErr, ackErr error
	wg.Go(func() {
		_, pubErr = q.b.Publish(ctx, bus.OutgoingMessage{Subject: "lost.a", Payload: []byte("one"), MsgID: "one"})
	})
	wg.Go(func() {
		msgs := make([]bus.OutgoingMessage, 10)
		for i := range msgs {
			msgs[i] = bus.OutgoingMessage{Subject: "lost.b", Payload: []byte("b"), MsgID: fmt.Sprintf("b-%d", i)}
		}
		results, err := q.b.PublishBatch(ctx, msgs)
		batchErr = err
		for i, r := range results {
			if r.Err != nil {
				batchErr = errors.Join(batchErr, fmt.Errorf("message %d: %w", i, r.Err))
			}
		}
	})
	wg.Go(func() { ackErr = q.held.Ack(ctx) })
	q.restore(t)
	wg.Wait()
	if pubErr != nil || batchErr != nil || ackErr != nil {
		t.Fatalf("once the servers were back: Publish: %v; PublishBatch: %v; Ack: %v", pubErr, batchErr, ackErr)
	}
	info, err := q.b.StreamInfo(ctx, "LOST")
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 12 {
		t.Errorf("the stream holds %d messages, want 12", info.Messages)
	}
	ci, err := q.b.ConsumerInfo(ctx, "LOST", "c")
	if err != nil {
		t.Fatal(err)
	}
	if ci.NumAckPending != 0 {
		t.Errorf("the consumer has %d messages pending an ack, want 0: the ack was lost", ci.NumAckPending)
	}
}

// TestPublishWhoseReplyIsLost cuts the connection of a publish as soon as
// the server has it, so that its ack is lost: a message with a msg id is
// sent again on the new connection and stored once, alone or in a batch;
// one without is not sent again, since a repeat could store it twice, and
// fails when its context ends.
func TestPublishWhoseReplyIsLost(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	proxy := newCutProxy(t, srv.ClientURL()[len("nats://"):])
	b, nc := pinnedBus(t, proxy.url())
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "CUT", Subjects: []string{"cut.>"}}); err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		t.Helper()
		info, err := b.StreamInfo(ctx, "CUT")
		if err != nil {
			t.Fatal(err)
		}
		return info.Messages
	}

	proxy.arm("cut.one")
	ack, err := b.Publish(ctx, bus.OutgoingMessage{Subject: "cut.one", Payload: []byte("x"), MsgID: "one"})
	if err != nil {
		t.Fatalf("Publish with a msg id whose ack was lost: %v", err)
	}
	if proxy.cutCount() != 1 || !ack.Duplicate || ack.Sequence != 1 {
		t.Fatalf("Publish: cuts %d, ack %+v; want one cut and the first message's ack as a duplicate", proxy.cutCount(), ack)
	}

	if err := waitConnected(ctx, nc); err != nil {
		t.Fatal(err)
	}
	proxy.arm("cut.batch")
	msgs := make([]bus.OutgoingMessage, 5)
	for i := range msgs {
		msgs[i] = bus.OutgoingMessage{Subject: "cut.batch", Payload: []byte("x"), MsgID: fmt.Sprintf("batch-%d", i)}
	}
	results, err := b.PublishBatch(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Err != nil {
			t.Errorf("PublishBatch with an ack lost, message %d: %v", i, r.Err)
		}
	}
	if n := stored(); proxy.cutCount() != 2 || n != 6 {
		t.Fatalf("after the batch: cuts %d, stored %d; want 2 and 6", proxy.cutCount(), n)
	}

	if err := waitConnected(ctx, nc); err != nil {
		t.Fatal(err)
	}
	proxy.arm("cut.plain")
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = b.Publish(pctx, bus.OutgoingMessage{Subject: "cut.plain", Payload: []byte("x")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish without a msg id whose ack was lost = %v, want context.DeadlineExceeded", err)
	}
	if n := stored(); proxy.cutCount() != 3 || n != 7 {
		t.Fatalf("after the publish without a msg id: cuts %d, stored %d; want 3 and 7 (sent once)", proxy.cutCount(), n)
	}
}
