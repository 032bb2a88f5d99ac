package jetstream_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

func TestEnsureStreamMapsEveryField(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name string
		cfg  bus.StreamConfig
		want natsjs.StreamConfig
	}{
		{
			name: "defaults",
			cfg:  bus.StreamConfig{Subjects: []string{"defaults.>"}},
			want: natsjs.StreamConfig{
				Subjects: []string{"defaults.>"}, Retention: natsjs.LimitsPolicy, Storage: natsjs.FileStorage,
				Replicas: 1, MaxMsgs: -1, MaxBytes: -1, MaxMsgSize: -1, Discard: natsjs.DiscardOld,
				Duplicates: 2 * time.Minute,
			},
		},
		{
			name: "every_field",
			cfg: bus.StreamConfig{
				Description: "all set", Subjects: []string{"every.a", "every.b.*"},
				Retention: bus.RetentionInterest, Storage: bus.StorageMemory, Replicas: 1,
				MaxMsgs: 1000, MaxBytes: 1 << 20, MaxAge: time.Hour, MaxMsgSize: 4096,
				Discard: bus.DiscardNew, DuplicateWindow: 30 * time.Second,
			},
			want: natsjs.StreamConfig{
				Description: "all set", Subjects: []string{"every.a", "every.b.*"},
				Retention: natsjs.InterestPolicy, Storage: natsjs.MemoryStorage, Replicas: 1,
				MaxMsgs: 1000, MaxBytes: 1 << 20, MaxAge: time.Hour, MaxMsgSize: 4096,
				Discard: natsjs.DiscardNew, Duplicates: 30 * time.Second,
			},
		},
		{
			name: "work_queue_unlimited",
			cfg: bus.StreamConfig{
				Subjects: []string{"wq.>"}, Retention: bus.RetentionWorkQueue,
				MaxMsgs: -1, MaxBytes: -1, MaxMsgSize: -1, DuplicateWindow: time.Minute,
			},
			want: natsjs.StreamConfig{
				Subjects: []string{"wq.>"}, Retention: natsjs.WorkQueuePolicy, Storage: natsjs.FileStorage,
				Replicas: 1, MaxMsgs: -1, MaxBytes: -1, MaxMsgSize: -1, Discard: natsjs.DiscardOld,
				Duplicates: time.Minute,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			tc.cfg.Name, tc.want.Name = tc.name, tc.name
			info, err := e.bus.EnsureStream(ctx, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			s, err := e.raw.Stream(ctx, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			got := s.CachedInfo().Config
			if got.Name != tc.want.Name || got.Description != tc.want.Description || !slices.Equal(got.Subjects, tc.want.Subjects) ||
				got.Retention != tc.want.Retention || got.Storage != tc.want.Storage || got.Replicas != tc.want.Replicas ||
				got.MaxMsgs != tc.want.MaxMsgs || got.MaxBytes != tc.want.MaxBytes || got.MaxAge != tc.want.MaxAge ||
				got.MaxMsgSize != tc.want.MaxMsgSize || got.Discard != tc.want.Discard || got.Duplicates != tc.want.Duplicates {
				t.Fatalf("server holds\n%+v\nwant\n%+v", got, tc.want)
			}

			// What the bus reports is what it was given, with the server's
			// defaults filled in and "unlimited" as zero.
			want := tc.cfg
			want.Replicas = 1
			want.MaxMsgs, want.MaxBytes, want.MaxMsgSize = max(want.MaxMsgs, 0), max(want.MaxBytes, 0), max(want.MaxMsgSize, 0)
			want.DuplicateWindow = tc.want.Duplicates
			if !equalStreamConfig(info.Config, want) {
				t.Fatalf("EnsureStream reports\n%+v\nwant\n%+v", info.Config, want)
			}
		})
	}
}

func equalStreamConfig(a, b bus.StreamConfig) bool {
	return a.Name == b.Name && a.Description == b.Description && slices.Equal(a.Subjects, b.Subjects) &&
		a.Retention == b.Retention && a.Storage == b.Storage && a.Replicas == b.Replicas &&
		a.MaxMsgs == b.MaxMsgs && a.MaxBytes == b.MaxBytes && a.MaxAge == b.MaxAge &&
		a.MaxMsgSize == b.MaxMsgSize && a.Discard == b.Discard && a.DuplicateWindow == b.DuplicateWindow
}

func TestEnsureStreamIsIdempotentAndUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testContext(t)
	cfg := bus.StreamConfig{Name: "IDEM", Subjects: []string{"idem.>"}, MaxMsgs: 10}
	first, err := e.bus.EnsureStream(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, "idem.a", "kept")
	again, err := e.bus.EnsureStream(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !equalStreamConfig(first.Config, again.Config) || again.Messages != 1 {
		t.Fatalf("second EnsureStream: %+v, want the same config and the stored message", again)
	}
	cfg.MaxMsgs = 20
	cfg.Subjects = append(cfg.Subjects, "idem2.>")
	updated, err := e.bus.EnsureStream(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Config.MaxMsgs != 20 || len(updated.Config.Subjects) != 2 || updated.Messages != 1 {
		t.Fatalf("update: %+v, want max_msgs 20, two subjects and the stored message", updated)
	}
}

func TestEnsureStreamRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	valid := func() bus.StreamConfig { return bus.StreamConfig{Name: "S", Subjects: []string{"s.>"}} }
	cases := map[string]func(*bus.StreamConfig){
		"no name":                    func(c *bus.StreamConfig) { c.Name = "" },
		"name with dot":              func(c *bus.StreamConfig) { c.Name = "a.b" },
		"name with space":            func(c *bus.StreamConfig) { c.Name = "a b" },
		"name with wildcard":         func(c *bus.StreamConfig) { c.Name = "a*" },
		"empty subject":              func(c *bus.StreamConfig) { c.Subjects = []string{""} },
		"subject with empty token":   func(c *bus.StreamConfig) { c.Subjects = []string{"a..b"} },
		"subject > not last":         func(c *bus.StreamConfig) { c.Subjects = []string{"a.>.b"} },
		"unknown retention":          func(c *bus.StreamConfig) { c.Retention = 7 },
		"unknown storage":            func(c *bus.StreamConfig) { c.Storage = 7 },
		"unknown discard":            func(c *bus.StreamConfig) { c.Discard = 7 },
		"negative replicas":          func(c *bus.StreamConfig) { c.Replicas = -1 },
		"too many replicas":          func(c *bus.StreamConfig) { c.Replicas = 6 },
		"max msgs below -1":          func(c *bus.StreamConfig) { c.MaxMsgs = -2 },
		"max bytes below -1":         func(c *bus.StreamConfig) { c.MaxBytes = -2 },
		"max msg size below -1":      func(c *bus.StreamConfig) { c.MaxMsgSize = -2 },
		"negative max age":           func(c *bus.StreamConfig) { c.MaxAge = -time.Second },
		"negative duplicate window":  func(c *bus.StreamConfig) { c.DuplicateWindow = -time.Second },
		"duplicate window > max age": func(c *bus.StreamConfig) { c.MaxAge = time.Minute; c.DuplicateWindow = time.Hour },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := valid()
			mutate(&cfg)
			if _, err := e.bus.EnsureStream(testContext(t), cfg); !errors.Is(err, bus.ErrInvalidConfig) {
				t.Fatalf("EnsureStream(%+v) = %v, want bus.ErrInvalidConfig", cfg, err)
			}
		})
	}
}

func TestEnsureStreamServerRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testContext(t)
	cfg := bus.StreamConfig{Name: "FIXED", Subjects: []string{"fixed.>"}}
	if _, err := e.bus.EnsureStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Storage = bus.StorageMemory
	if _, err := e.bus.EnsureStream(ctx, cfg); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("changing the storage of a stream = %v, want bus.ErrInvalidConfig", err)
	}
}

func TestEnsureConsumerMapsEveryField(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "CONS", bus.StreamConfig{})
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name  string
		cfg   bus.ConsumerConfig
		check func(t *testing.T, c natsjs.ConsumerConfig)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c natsjs.ConsumerConfig) {
				if c.DeliverPolicy != natsjs.DeliverAllPolicy || c.AckPolicy != natsjs.AckExplicitPolicy || c.AckWait != 30*time.Second ||
					c.MaxDeliver != -1 || c.FilterSubject != "" || len(c.FilterSubjects) != 0 || c.MaxAckPending != 1000 {
					t.Fatalf("server holds %+v, want JetStream's defaults", c)
				}
			},
		},
		{
			name: "one_filter",
			cfg: bus.ConsumerConfig{
				Description: "one", FilterSubjects: []string{"CONS.a"}, DeliverPolicy: bus.DeliverNew,
				AckPolicy: bus.AckAll, AckWait: 10 * time.Second, MaxDeliver: 5, MaxAckPending: 7,
			},
			check: func(t *testing.T, c natsjs.ConsumerConfig) {
				if c.Description != "one" || c.FilterSubject != "CONS.a" || len(c.FilterSubjects) != 0 || c.DeliverPolicy != natsjs.DeliverNewPolicy ||
					c.AckPolicy != natsjs.AckAllPolicy || c.AckWait != 10*time.Second || c.MaxDeliver != 5 || c.MaxAckPending != 7 {
					t.Fatalf("server holds %+v", c)
				}
			},
		},
		{
			name: "several_filters_by_sequence_with_backoff",
			cfg: bus.ConsumerConfig{
				FilterSubjects: []string{"CONS.a", "CONS.b.>"}, DeliverPolicy: bus.DeliverByStartSequence, OptStartSeq: 3,
				AckWait: time.Second, MaxDeliver: 4, Backoff: []time.Duration{time.Second, 2 * time.Second, 5 * time.Second},
			},
			check: func(t *testing.T, c natsjs.ConsumerConfig) {
				if c.FilterSubject != "" || !slices.Equal(c.FilterSubjects, []string{"CONS.a", "CONS.b.>"}) ||
					c.DeliverPolicy != natsjs.DeliverByStartSequencePolicy || c.OptStartSeq != 3 || c.MaxDeliver != 4 ||
					!slices.Equal(c.BackOff, []time.Duration{time.Second, 2 * time.Second, 5 * time.Second}) {
					t.Fatalf("server holds %+v", c)
				}
			},
		},
		{
			name: "by_start_time_ack_none",
			cfg:  bus.ConsumerConfig{DeliverPolicy: bus.DeliverByStartTime, OptStartTime: start, AckPolicy: bus.AckNone},
			check: func(t *testing.T, c natsjs.ConsumerConfig) {
				if c.DeliverPolicy != natsjs.DeliverByStartTimePolicy || c.OptStartTime == nil || !c.OptStartTime.Equal(start) || c.AckPolicy != natsjs.AckNonePolicy {
					t.Fatalf("server holds %+v", c)
				}
			},
		},
		{
			name: "last_per_subject",
			cfg:  bus.ConsumerConfig{DeliverPolicy: bus.DeliverLastPerSubject, FilterSubjects: []string{"CONS.>"}, MaxDeliver: -1, MaxAckPending: -1},
			check: func(t *testing.T, c natsjs.ConsumerConfig) {
				if c.DeliverPolicy != natsjs.DeliverLastPerSubjectPolicy || c.MaxDeliver != -1 || c.MaxAckPending != -1 {
					t.Fatalf("server holds %+v", c)
				}
			},
		},
		{
			name: "last",
			cfg:  bus.ConsumerConfig{DeliverPolicy: bus.DeliverLast},
			check: func(t *testing.T, c natsjs.ConsumerConfig) {
				if c.DeliverPolicy != natsjs.DeliverLastPolicy {
					t.Fatalf("server holds %+v", c)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			tc.cfg.Durable, tc.cfg.Stream = tc.name, stream
			info, err := e.bus.EnsureConsumer(ctx, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			c, err := e.raw.Consumer(ctx, stream, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c.CachedInfo().Config)

			got := info.Config
			if got.Durable != tc.name || got.Stream != stream || got.Description != tc.cfg.Description ||
				!slices.Equal(got.FilterSubjects, tc.cfg.FilterSubjects) || got.DeliverPolicy != tc.cfg.DeliverPolicy ||
				got.OptStartSeq != tc.cfg.OptStartSeq || !got.OptStartTime.Equal(tc.cfg.OptStartTime) ||
				got.AckPolicy != tc.cfg.AckPolicy || !slices.Equal(got.Backoff, tc.cfg.Backoff) {
				t.Fatalf("EnsureConsumer reports %+v, want what it was given: %+v", got, tc.cfg)
			}
		})
	}
}

func TestEnsureConsumerRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "BAD", bus.StreamConfig{})
	cases := map[string]bus.ConsumerConfig{
		"no name":                  {Stream: stream},
		"no stream":                {Durable: "c"},
		"name with dot":            {Durable: "a.b", Stream: stream},
		"filter listed twice":      {Durable: "c", Stream: stream, FilterSubjects: []string{"BAD.a", "BAD.a"}},
		"empty filter":             {Durable: "c", Stream: stream, FilterSubjects: []string{""}},
		"unknown deliver policy":   {Durable: "c", Stream: stream, DeliverPolicy: 17},
		"by sequence without seq":  {Durable: "c", Stream: stream, DeliverPolicy: bus.DeliverByStartSequence},
		"seq without by sequence":  {Durable: "c", Stream: stream, OptStartSeq: 4},
		"by time without time":     {Durable: "c", Stream: stream, DeliverPolicy: bus.DeliverByStartTime},
		"time without by time":     {Durable: "c", Stream: stream, OptStartTime: time.Now()},
		"unknown ack policy":       {Durable: "c", Stream: stream, AckPolicy: 9},
		"negative ack wait":        {Durable: "c", Stream: stream, AckWait: -time.Second},
		"max deliver below -1":     {Durable: "c", Stream: stream, MaxDeliver: -2},
		"zero backoff":             {Durable: "c", Stream: stream, Backoff: []time.Duration{0}},
		"backoff beyond delivers":  {Durable: "c", Stream: stream, MaxDeliver: 2, Backoff: []time.Duration{time.Second, time.Second}},
		"max ack pending below -1": {Durable: "c", Stream: stream, MaxAckPending: -2},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := e.bus.EnsureConsumer(testContext(t), cfg); !errors.Is(err, bus.ErrInvalidConfig) {
				t.Fatalf("EnsureConsumer(%+v) = %v, want bus.ErrInvalidConfig", cfg, err)
			}
		})
	}
}

func TestStreamsAndDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testContext(t)
	for _, name := range []string{"ONE", "TWO"} {
		e.stream(t, name, bus.StreamConfig{})
	}
	e.consumer(t, "ONE", "c", bus.ConsumerConfig{})
	e.publish(t, "ONE.x", "a")

	all, err := e.bus.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(all))
	for _, s := range all {
		names = append(names, s.Config.Name)
		if s.Config.Name == "ONE" && (s.Messages != 1 || s.Consumers != 1 || s.FirstSeq != 1 || s.LastSeq != 1 || s.Bytes == 0) {
			t.Errorf("stream ONE reports %+v, want one message and one consumer", s)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"ONE", "TWO"}) {
		t.Fatalf("Streams lists %q, want ONE and TWO", names)
	}

	if err := e.bus.DeleteConsumer(ctx, "ONE", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.Fetch(ctx, "ONE", "c", bus.FetchOptions{MaxWait: time.Second}); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("Fetch from a deleted consumer = %v, want bus.ErrNotFound", err)
	}
	if err := e.bus.DeleteStream(ctx, "ONE"); err != nil {
		t.Fatal(err)
	}
	if err := e.bus.DeleteStream(ctx, "ONE"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("deleting a deleted stream = %v, want bus.ErrNotFound", err)
	}
}
