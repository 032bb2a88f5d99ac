package bench

import (
	"slices"
	"sync"
	"time"
)

// samples collects latencies from concurrent goroutines. Each goroutine
// appends to its own shard, so recording costs no lock on the hot path.
type samples struct {
	mu     sync.Mutex
	shards [][]time.Duration
}

// shard returns a slice for one goroutine to append to; hand it back with
// keep when the goroutine is done.
func (s *samples) shard(capacity int) []time.Duration {
	return make([]time.Duration, 0, capacity)
}

// keep adds one goroutine's samples.
func (s *samples) keep(d []time.Duration) {
	s.mu.Lock()
	s.shards = append(s.shards, d)
	s.mu.Unlock()
}

// percentiles returns the latency percentiles of everything kept.
func (s *samples) percentiles() Percentiles {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []time.Duration
	for _, sh := range s.shards {
		all = append(all, sh...)
	}
	return percentilesOf(all)
}

// Percentiles summarise a latency distribution. Zero values mean nothing
// was recorded.
type Percentiles struct {
	Count int
	P50   time.Duration
	P99   time.Duration
	P999  time.Duration
	Max   time.Duration
}

// percentilesOf sorts d in place and reads its percentiles (nearest rank).
func percentilesOf(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.999999) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return Percentiles{Count: len(d), P50: rank(0.50), P99: rank(0.99), P999: rank(0.999), Max: d[len(d)-1]}
}
