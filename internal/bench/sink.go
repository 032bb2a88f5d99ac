package bench

import (
	"sync"
	"sync/atomic"
	"time"
)

// sink counts the pipeline runs of one trigger and, when asked, the
// latency from each message's send time to the start of its run
// (messages sent at time 0 are counted without a latency).
type sink struct {
	target  int64
	latency bool

	count atomic.Int64
	first atomic.Int64 // Unix nanoseconds of the first run
	end   atomic.Int64 // Unix nanoseconds of the run that reached target
	bad   atomic.Int64 // runs whose data was not a bench message
	done  chan struct{}

	mu  sync.Mutex
	lat []time.Duration
}

func newSink(target int, latency bool) *sink {
	return &sink{target: int64(target), latency: latency, done: make(chan struct{})}
}

// record is one pipeline run with the trigger data the plugin sent.
func (s *sink) record(data map[string]any) {
	now := time.Now().UnixNano()
	s.first.CompareAndSwap(0, now)
	if _, ok := data["subject"].(string); !ok {
		s.bad.Add(1)
	}
	if s.latency {
		if ts, ok := sendTime(data); !ok {
			s.bad.Add(1)
		} else if ts != 0 {
			s.mu.Lock()
			s.lat = append(s.lat, time.Duration(now-ts))
			s.mu.Unlock()
		}
	}
	if s.count.Add(1) == s.target {
		s.end.Store(time.Now().UnixNano())
		close(s.done)
	}
}

// started reports whether a run has begun, and when.
func (s *sink) started() (time.Time, bool) {
	f := s.first.Load()
	return time.Unix(0, f), f != 0
}

// latencies returns the recorded latencies' percentiles.
func (s *sink) latencies() Percentiles {
	s.mu.Lock()
	defer s.mu.Unlock()
	return percentilesOf(append([]time.Duration(nil), s.lat...))
}
