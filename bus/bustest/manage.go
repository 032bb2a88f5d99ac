package bustest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// testManagement covers the StreamManager and the errors of misuse, each
// part on its own streams of one shared Env.
func testManagement(t *testing.T, s *suite) {
	f := s.setup(t)
	t.Run("EnsureStreamIdempotentAndUpdates", func(t *testing.T) { ensureStream(t, s, f) })
	t.Run("EnsureConsumerIdempotentAndUpdates", func(t *testing.T) { ensureConsumer(t, f) })
	t.Run("ConsumerInfoCounts", func(t *testing.T) { consumerInfoCounts(t, f.sibling(t)) })
	t.Run("Delete", func(t *testing.T) { deleteResources(t, f.sibling(t)) })
	t.Run("NotFound", func(t *testing.T) { notFound(t, s, f) })
	t.Run("InvalidConfig", func(t *testing.T) { invalidConfig(t, f) })
	t.Run("NoStream", func(t *testing.T) {
		_, err := f.bus.Publish(guard(t), bus.OutgoingMessage{Subject: s.orphanSubject(t), Payload: []byte("lost")})
		wantErr(t, "Publish to a subject no stream captures", err, bus.ErrNoStream)
	})
	t.Run("PayloadTooLarge", func(t *testing.T) { payloadTooLarge(t, f.sibling(t, withMaxMsgSize(1024))) })
}

// ensureStream creates a stream twice with one config, then updates its
// MaxMsgs, and checks what StreamInfo and Streams report.
func ensureStream(t *testing.T, s *suite, f *fixture) {
	ctx := guard(t)
	name := s.uniqueName(t)
	cfg := bus.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: s.h.Storage, Replicas: s.h.Replicas, MaxMsgs: 100}
	for call := 1; call <= 2; call++ {
		info, err := f.bus.EnsureStream(ctx, cfg)
		if err != nil {
			t.Fatalf("EnsureStream call %d: %v", call, err)
		}
		if info.Config.Name != name || info.Config.MaxMsgs != 100 {
			t.Errorf("EnsureStream call %d: config %+v, want name %s, MaxMsgs 100", call, info.Config, name)
		}
	}
	cfg.MaxMsgs = 200
	if info, err := f.bus.EnsureStream(ctx, cfg); err != nil {
		t.Fatalf("EnsureStream updating MaxMsgs: %v", err)
	} else if info.Config.MaxMsgs != 200 {
		t.Errorf("EnsureStream updating MaxMsgs: MaxMsgs = %d, want 200", info.Config.MaxMsgs)
	}
	info, err := f.bus.StreamInfo(ctx, name)
	if err != nil {
		t.Fatalf("StreamInfo: %v", err)
	}
	if info.Config.MaxMsgs != 200 || !slices.Equal(info.Config.Subjects, cfg.Subjects) || info.Config.Storage != cfg.Storage {
		t.Errorf("StreamInfo config %+v, want MaxMsgs 200, subjects %q, storage %v", info.Config, cfg.Subjects, cfg.Storage)
	}
	if s.h.Replicas > 0 && info.Config.Replicas != s.h.Replicas {
		t.Errorf("StreamInfo config has %d replicas, want %d", info.Config.Replicas, s.h.Replicas)
	}
	all, err := f.bus.Streams(ctx)
	if err != nil {
		t.Fatalf("Streams: %v", err)
	}
	if !slices.ContainsFunc(all, func(i bus.StreamInfo) bool { return i.Config.Name == name }) {
		t.Errorf("Streams does not list %s", name)
	}
}

// ensureConsumer creates a consumer twice with one config, then updates its
// ack wait, and checks what ConsumerInfo reports.
func ensureConsumer(t *testing.T, f *fixture) {
	ctx := guard(t)
	cfg := bus.ConsumerConfig{Durable: "audit", Stream: f.stream, AckPolicy: bus.AckExplicit, AckWait: 30 * time.Second}
	for call := 1; call <= 2; call++ {
		info, err := f.bus.EnsureConsumer(ctx, cfg)
		if err != nil {
			t.Fatalf("EnsureConsumer call %d: %v", call, err)
		}
		if info.Config.Durable != cfg.Durable || info.Config.AckWait != cfg.AckWait {
			t.Errorf("EnsureConsumer call %d: config %+v, want durable %s, AckWait %v", call, info.Config, cfg.Durable, cfg.AckWait)
		}
	}
	cfg.AckWait = 20 * time.Second
	if _, err := f.bus.EnsureConsumer(ctx, cfg); err != nil {
		t.Fatalf("EnsureConsumer updating AckWait: %v", err)
	}
	// A clustered broker answers the update before the consumer's leader
	// has applied it, so ConsumerInfo may show the old value for a moment.
	wctx, cancel := context.WithTimeout(ctx, countGuard)
	defer cancel()
	for {
		info, err := f.bus.ConsumerInfo(wctx, f.stream, cfg.Durable)
		if err != nil {
			t.Fatalf("ConsumerInfo: %v", err)
		}
		if info.Config.AckWait == cfg.AckWait {
			return
		}
		select {
		case <-wctx.Done():
			t.Errorf("ConsumerInfo AckWait = %v, want %v", info.Config.AckWait, cfg.AckWait)
			return
		case <-time.After(countPoll):
		}
	}
}

// consumerInfoCounts checks NumPending and NumAckPending after publishing
// five messages and fetching two.
func consumerInfoCounts(t *testing.T, f *fixture) {
	f.publish(t, "a", 5)
	f.expectCounts(t, "after 5 publishes", 5, 0)
	f.receive(t, 2)
	f.expectCounts(t, "after fetching 2", 3, 2)
}

// deleteResources deletes a consumer and its stream and checks both are
// gone.
func deleteResources(t *testing.T, f *fixture) {
	ctx := guard(t)
	if err := f.bus.DeleteConsumer(ctx, f.stream, f.consumer); err != nil {
		t.Fatalf("DeleteConsumer: %v", err)
	}
	_, err := f.bus.ConsumerInfo(ctx, f.stream, f.consumer)
	wantErr(t, "ConsumerInfo of a deleted consumer", err, bus.ErrNotFound)
	if err := f.bus.DeleteStream(ctx, f.stream); err != nil {
		t.Fatalf("DeleteStream: %v", err)
	}
	_, err = f.bus.StreamInfo(ctx, f.stream)
	wantErr(t, "StreamInfo of a deleted stream", err, bus.ErrNotFound)
	all, err := f.bus.Streams(ctx)
	if err != nil {
		t.Fatalf("Streams: %v", err)
	}
	if slices.ContainsFunc(all, func(i bus.StreamInfo) bool { return i.Config.Name == f.stream }) {
		t.Errorf("Streams still lists deleted stream %s", f.stream)
	}
}

// notFound checks that every call naming a missing stream or consumer
// fails with ErrNotFound.
func notFound(t *testing.T, s *suite, f *fixture) {
	ctx := guard(t)
	missing := s.uniqueName(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"StreamInfo of a missing stream", func() error {
			_, err := f.bus.StreamInfo(ctx, missing)
			return err
		}},
		{"ConsumerInfo on a missing stream", func() error {
			_, err := f.bus.ConsumerInfo(ctx, missing, consumerName)
			return err
		}},
		{"ConsumerInfo of a missing consumer", func() error {
			_, err := f.bus.ConsumerInfo(ctx, f.stream, missing)
			return err
		}},
		{"Fetch from a missing consumer", func() error {
			_, err := f.bus.Fetch(ctx, f.stream, missing, bus.FetchOptions{Batch: 1, MaxWait: time.Second})
			return err
		}},
		{"EnsureConsumer on a missing stream", func() error {
			_, err := f.bus.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: consumerName, Stream: missing})
			return err
		}},
		{"DeleteStream of a missing stream", func() error { return f.bus.DeleteStream(ctx, missing) }},
		{"DeleteConsumer of a missing consumer", func() error { return f.bus.DeleteConsumer(ctx, f.stream, missing) }},
	}
	for _, c := range calls {
		wantErr(t, c.name, c.call(), bus.ErrNotFound)
	}
}

// invalidConfig checks that out-of-range fetch batches and nameless
// resources fail with ErrInvalidConfig.
func invalidConfig(t *testing.T, f *fixture) {
	ctx := guard(t)
	for _, batch := range []int{bus.MaxFetchBatch + 1, -1} {
		_, err := f.bus.Fetch(ctx, f.stream, f.consumer, bus.FetchOptions{Batch: batch, MaxWait: time.Second})
		wantErr(t, fmt.Sprintf("Fetch with Batch %d", batch), err, bus.ErrInvalidConfig)
	}
	_, err := f.bus.EnsureStream(ctx, bus.StreamConfig{Subjects: []string{f.stream + "_nameless.>"}})
	wantErr(t, "EnsureStream without a name", err, bus.ErrInvalidConfig)
	_, err = f.bus.EnsureConsumer(ctx, bus.ConsumerConfig{Stream: f.stream})
	wantErr(t, "EnsureConsumer without a durable name", err, bus.ErrInvalidConfig)
}

// payloadTooLarge publishes past the stream's 1024-byte MaxMsgSize and
// checks it is refused with ErrPayloadTooLarge and nothing is stored, while
// a message within the limit is.
func payloadTooLarge(t *testing.T, f *fixture) {
	ctx := guard(t)
	_, err := f.bus.Publish(ctx, bus.OutgoingMessage{Subject: f.subject("big"), Payload: bytes.Repeat([]byte{'x'}, 4096)})
	wantErr(t, "Publish of 4096 bytes to a stream with MaxMsgSize 1024", err, bus.ErrPayloadTooLarge)
	if _, err := f.bus.Publish(ctx, bus.OutgoingMessage{Subject: f.subject("small"), Payload: bytes.Repeat([]byte{'x'}, 512)}); err != nil {
		t.Errorf("Publish of 512 bytes: %v", err)
	}
	if n := f.streamInfo(t).Messages; n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}
