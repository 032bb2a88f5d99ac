package jetstream

import (
	"testing"
	"time"
)

func TestParseAckReply(t *testing.T) {
	t.Parallel()
	ts := time.Unix(0, 1700000000123456789)
	cases := []struct {
		name  string
		reply string
		want  ackMeta
		bad   bool
	}{
		{
			name:  "v1",
			reply: "$JS.ACK.ORDERS.worker.3.42.17.1700000000123456789.5",
			want:  ackMeta{stream: "ORDERS", consumer: "worker", delivered: 3, streamSeq: 42, consumerSeq: 17, timestamp: ts},
		},
		{
			name:  "v2 without domain",
			reply: "$JS.ACK._.ACCHASH.ORDERS.worker.1.7.7.1700000000123456789.0.RANDOM",
			want:  ackMeta{stream: "ORDERS", consumer: "worker", delivered: 1, streamSeq: 7, consumerSeq: 7, timestamp: ts},
		},
		{
			name:  "v2 with domain and no random token",
			reply: "$JS.ACK.hub.ACCHASH.S.c.2.9.4.1700000000123456789.11",
			want:  ackMeta{stream: "S", consumer: "c", delivered: 2, streamSeq: 9, consumerSeq: 4, timestamp: ts},
		},
		{name: "not an ack subject", reply: "_INBOX.abc", bad: true},
		{name: "empty", reply: "", bad: true},
		{name: "too few tokens", reply: "$JS.ACK.S.c.1.2.3.4", bad: true},
		{name: "eight tokens after the prefix", reply: "$JS.ACK.a.b.S.c.1.2.3.4", bad: true},
		{name: "non-numeric sequence", reply: "$JS.ACK.S.c.1.x.3.4.5", bad: true},
		{name: "empty stream", reply: "$JS.ACK..c.1.2.3.4.5", bad: true},
		{name: "sequence overflows", reply: "$JS.ACK.S.c.1.99999999999999999999.3.4.5", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseAckReply(tc.reply)
			if tc.bad {
				if err == nil {
					t.Fatalf("parseAckReply(%q) = %+v, want an error", tc.reply, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.stream != tc.want.stream || got.consumer != tc.want.consumer || got.delivered != tc.want.delivered ||
				got.streamSeq != tc.want.streamSeq || got.consumerSeq != tc.want.consumerSeq || !got.timestamp.Equal(tc.want.timestamp) {
				t.Fatalf("parseAckReply(%q) = %+v, want %+v", tc.reply, got, tc.want)
			}
		})
	}
}

func TestParseAckReplyDoesNotAllocate(t *testing.T) {
	reply := "$JS.ACK._.ACCHASH.ORDERS.worker.1.7.7.1700000000123456789.0.RANDOM"
	if n := testing.AllocsPerRun(100, func() { _, _ = parseAckReply(reply) }); n != 0 {
		t.Fatalf("parseAckReply allocates %v times per call", n)
	}
}

func TestSubjectProblem(t *testing.T) {
	t.Parallel()
	cases := []struct {
		subject string
		wild    bool
		ok      bool
	}{
		{"orders", false, true},
		{"orders.created.eu", false, true},
		{"orders.*", true, true},
		{"orders.>", true, true},
		{"*.created.>", true, true},
		{"orders.*", false, false},
		{"orders.>", false, false},
		{"orders.>.x", true, false},
		{"orders.a*", true, false},
		{"", false, false},
		{".orders", false, false},
		{"orders.", false, false},
		{"orders..created", false, false},
		{"orders created", false, false},
		{"orders\tcreated", false, false},
	}
	for _, tc := range cases {
		if got := subjectProblem(tc.subject, tc.wild) == ""; got != tc.ok {
			t.Errorf("subjectProblem(%q, wild=%v) accepts = %v, want %v", tc.subject, tc.wild, got, tc.ok)
		}
	}
}

func TestSubjectProblemDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = subjectProblem("orders.created.eu.west", false) }); n != 0 {
		t.Fatalf("subjectProblem allocates %v times per call", n)
	}
}

// TestTrackerForgetsExpiredDeliveries checks that unsettled deliveries do
// not accumulate: once past their ack wait they are stale and dropped.
func TestTrackerForgetsExpiredDeliveries(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	const n = 100
	for i := range n {
		tr.add(&delivery{key: deliveryKey{stream: "S", consumer: "c", seq: uint64(i + 1)}, reply: "r", ackWait: time.Minute})
	}
	if got := tr.size(); got != n {
		t.Fatalf("tracking %d deliveries, want %d", got, n)
	}
	if _, err := tr.lookup(deliveryKey{stream: "S", consumer: "c", seq: 1}, "r", false); err != nil {
		t.Fatalf("a fresh delivery is stale: %v", err)
	}

	// Move the tracker's clock past every ack wait.
	tr.base = tr.base.Add(-time.Hour)
	if _, err := tr.lookup(deliveryKey{stream: "S", consumer: "c", seq: 2}, "r", true); err == nil {
		t.Fatal("an expired delivery can still be settled")
	}
	tr.add(&delivery{key: deliveryKey{stream: "S", consumer: "c", seq: n + 1}, reply: "r", ackWait: time.Minute})
	if got := tr.size(); got != 1 {
		t.Fatalf("after the ack waits passed %d deliveries are tracked, want only the new one", got)
	}
}

// TestTrackerRedeliveryReplacesDelivery checks that a redelivery makes the
// earlier delivery of the same message stale.
func TestTrackerRedeliveryReplacesDelivery(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	key := deliveryKey{stream: "S", consumer: "c", seq: 7}
	tr.add(&delivery{key: key, reply: "first", ackWait: time.Minute})
	tr.add(&delivery{key: key, reply: "second", ackWait: time.Minute})
	if _, err := tr.lookup(key, "first", true); err == nil {
		t.Fatal("the superseded delivery can still be settled")
	}
	if _, err := tr.lookup(key, "second", true); err != nil {
		t.Fatalf("the redelivery cannot be settled: %v", err)
	}
	if _, err := tr.lookup(key, "second", true); err == nil {
		t.Fatal("a settled delivery can be settled again")
	}
}
