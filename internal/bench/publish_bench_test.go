package bench

import (
	"context"
	"sync"
	"testing"
	"time"
)

// benchModes are the plugin modes the Go benchmarks measure, as the
// prefixes of their names.
var benchModes = []string{ModeInProcess, ModeOutOfProcess}

// opsParallel runs b.N operations split across workers and reports
// messages per second and the CPU time host and plugin spent per message.
func opsParallel(b *testing.B, s *session, workers int, do op) {
	b.Helper()
	ctx := b.Context()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		moved int64
		fail  error
	)
	b.ResetTimer()
	cpu0 := cpuTime(s)
	for w := range workers {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		wg.Go(func() {
			var mine int64
			for range n {
				m, err := do(ctx)
				if err != nil {
					mu.Lock()
					fail = err
					mu.Unlock()
					return
				}
				mine += int64(m)
			}
			mu.Lock()
			moved += mine
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	if fail != nil {
		b.Fatal(fail)
	}
	b.ReportMetric(float64(moved)/b.Elapsed().Seconds(), "msg/s")
	reportCPU(b, cpuTime(s)-cpu0, moved)
}

// reportCPU reports cpu per message.
func reportCPU(b *testing.B, cpu time.Duration, messages int64) {
	if messages > 0 {
		b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(messages), "cpu-µs/msg")
	}
}

// benchRawBroker starts an embedded broker in this process for b.
func benchRawBroker(b *testing.B, syncAlways bool) *rawBroker {
	b.Helper()
	rb, err := startRawBroker(b.Context(), b.TempDir(), syncAlways)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rb.close(context.Background()) })
	return rb
}

// benchSession starts the plugin in mode with an embedded broker for b.
func benchSession(b *testing.B, mode string, syncAlways bool) *session {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	s, err := openSession(ctx, launcher(b, mode), discardLogger(), b.TempDir(), syncAlways)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.close(context.Background()) })
	return s
}

// BenchmarkPublish mirrors the publish figures of eventbus bench: raw
// nats.go sync publish (1 and 8 callers) and async publish on a broker in
// this process, and step.eventbus.publish through the plugin in each mode
// (1 and 8 callers, and batches of 1,000). 128-byte bodies, file storage.
func BenchmarkPublish(b *testing.B) {
	body := payload(DefaultPayloadSize, 0)
	b.Run("raw-sync", func(b *testing.B) {
		rb := benchRawBroker(b, false)
		opsParallel(b, nil, 1, rb.syncPublish(body))
	})
	b.Run("raw-sync-x8", func(b *testing.B) {
		rb := benchRawBroker(b, false)
		opsParallel(b, nil, DefaultPublishConcurrency, rb.syncPublish(body))
	})
	b.Run("raw-async", func(b *testing.B) {
		rb := benchRawBroker(b, false)
		b.ResetTimer()
		cpu0 := cpuTime(nil)
		if err := rb.fill(b.Context(), subjectPublish, body, b.N); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		reportCPU(b, cpuTime(nil)-cpu0, int64(b.N))
	})
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			s := benchSession(b, mode, false)
			h, err := s.singlePublish(b.Context(), "publish", subjectPublish)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("step", func(b *testing.B) {
				opsParallel(b, s, 1, s.publishOne(h, subjectPublish, string(body)))
			})
			b.Run("step-x8", func(b *testing.B) {
				opsParallel(b, s, DefaultPublishConcurrency, s.publishOne(h, subjectPublish, string(body)))
			})
			bh, cfg, err := s.batchPublish(b.Context(), "batch", subjectBatch, DefaultBatchSize, string(body))
			if err != nil {
				b.Fatal(err)
			}
			b.Run("step-batch1000", func(b *testing.B) {
				opsParallel(b, s, 1, s.publishBatch(bh, cfg, DefaultBatchSize, string(body)))
			})
		})
	}
}

// BenchmarkPublishSyncAlways mirrors the sync_always figures: a serial
// sync publish with fsync on every write, raw and through the plugin in
// each mode.
func BenchmarkPublishSyncAlways(b *testing.B) {
	body := payload(DefaultPayloadSize, 0)
	b.Run("raw-sync", func(b *testing.B) {
		rb := benchRawBroker(b, true)
		opsParallel(b, nil, 1, rb.syncPublish(body))
	})
	for _, mode := range benchModes {
		b.Run(mode+"/step", func(b *testing.B) {
			s := benchSession(b, mode, true)
			h, err := s.singlePublish(b.Context(), "publish", subjectPublish)
			if err != nil {
				b.Fatal(err)
			}
			opsParallel(b, s, 1, s.publishOne(h, subjectPublish, string(body)))
		})
	}
}
