package postgres_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

// TestRead reads stored messages by sequence and subject without a
// consumer: consumers of the stream still get every message, and a reader
// waiting for the next message is woken by its publish.
func TestRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(bus.StreamConfig{Name: "R", Subjects: []string{"r.>"}, Retention: bus.RetentionInterest})
	e.consumer(bus.ConsumerConfig{Durable: "c", Stream: "R"})
	for i := range 10 {
		e.pub(fmt.Sprintf("r.%d", i%2), fmt.Sprint(i))
	}
	msgs, err := e.b.Read(e.ctx, "R", postgres.ReadOptions{Subject: "r.1", After: 3, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].StreamSequence != 4 || msgs[1].StreamSequence != 6 || string(msgs[1].Payload) != "5" ||
		msgs[0].Subject != "r.1" || msgs[0].AckToken != "" || msgs[0].Acknowledger != nil || msgs[0].Stream != "R" {
		t.Fatalf("read %+v", msgs)
	}
	all, err := e.b.Read(e.ctx, "R", postgres.ReadOptions{})
	if err != nil || len(all) != 10 {
		t.Fatalf("read everything: %d messages, %v", len(all), err)
	}
	if last, err := e.b.LastSequence(e.ctx, "R", "r.0"); err != nil || last != 9 {
		t.Fatalf("last sequence of r.0 = %d, %v; want 9", last, err)
	}
	if last, err := e.b.LastSequence(e.ctx, "R", "r.none"); err != nil || last != 0 {
		t.Fatalf("last sequence of r.none = %d, %v; want 0", last, err)
	}
	if got := e.fetch("R", "c", 10); len(got) != 10 {
		t.Fatalf("the consumer got %d messages after the reads, want 10", len(got))
	}

	got := make(chan []*bus.Message, 1)
	go func() {
		msgs, err := e.b.Read(e.ctx, "R", postgres.ReadOptions{After: 10, MaxWait: time.Minute})
		if err != nil {
			t.Error(err)
		}
		got <- msgs
	}()
	e.pub("r.0", "late")
	if msgs := <-got; len(msgs) != 1 || string(msgs[0].Payload) != "late" {
		t.Fatalf("waiting read got %+v", msgs)
	}
	if msgs, err := e.b.Read(e.ctx, "R", postgres.ReadOptions{After: 11}); err != nil || len(msgs) != 0 {
		t.Fatalf("read past the end: %d messages, %v", len(msgs), err)
	}
	if _, err := e.b.Read(e.ctx, "NOPE", postgres.ReadOptions{}); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("read a missing stream: %v, want ErrNotFound", err)
	}
	if _, err := e.b.Read(e.ctx, "R", postgres.ReadOptions{Subject: "r.>.x"}); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("read a bad pattern: %v, want ErrInvalidConfig", err)
	}
}

func TestStreamNameBySubject(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(bus.StreamConfig{Name: "A", Subjects: []string{"a.>"}})
	e.stream(bus.StreamConfig{Name: "B", Subjects: []string{"b.one", "b.two"}})
	for subject, want := range map[string]string{"a.x.y": "A", "a.*": "A", "b.two": "B", "b.*": "B"} {
		if got, err := e.b.StreamNameBySubject(e.ctx, subject); err != nil || got != want {
			t.Errorf("StreamNameBySubject(%q) = %q, %v; want %q", subject, got, err, want)
		}
	}
	if _, err := e.b.StreamNameBySubject(e.ctx, "c.x"); !errors.Is(err, bus.ErrNoStream) {
		t.Errorf("subject of no stream: %v, want ErrNoStream", err)
	}
	if _, err := e.b.StreamNameBySubject(e.ctx, ">"); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("pattern over two streams: %v, want ErrInvalidConfig", err)
	}
}

// TestSparseFilter: a consumer whose filter matches few of a stream's
// messages gets every one of them, in order, however far apart they lie:
// its fetches scan windows that grow past the gaps.
func TestSparseFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(bus.StreamConfig{Name: "SP", Subjects: []string{"sp.>"}})
	e.consumer(bus.ConsumerConfig{Durable: "rare", Stream: "SP", FilterSubjects: []string{"sp.rare"}})
	const total, every = 30000, 2500
	msgs := make([]bus.OutgoingMessage, 0, total)
	for i := 1; i <= total; i++ {
		subject := "sp.common"
		if i%every == 0 {
			subject = "sp.rare"
		}
		msgs = append(msgs, bus.OutgoingMessage{Subject: subject, Payload: []byte(fmt.Sprint(i))})
	}
	for i := 0; i < total; i += 1000 {
		if _, err := e.b.PublishBatch(e.ctx, msgs[i:i+1000]); err != nil {
			t.Fatal(err)
		}
	}
	got := e.fetch("SP", "rare", total/every)
	for i, m := range got {
		if want := uint64((i + 1) * every); m.StreamSequence != want || m.Subject != "sp.rare" {
			t.Errorf("message %d: %s seq %d, want sp.rare seq %d", i, m.Subject, m.StreamSequence, want)
		}
	}
	e.none("SP", "rare", 200*time.Millisecond)
}
