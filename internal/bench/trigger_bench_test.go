package bench

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkTrigger mirrors the delivery figures of eventbus bench: raw
// nats.go fetch and ack on a broker in this process, the bare gRPC round
// trip, and trigger.eventbus.subscribe into a host no-op pipeline in each
// mode, at concurrency 1, 8 and 32. One op is one message.
func BenchmarkTrigger(b *testing.B) {
	body := payload(DefaultPayloadSize, 0)
	b.Run("raw-fetch-ack", func(b *testing.B) {
		rb := benchRawBroker(b, false)
		if err := rb.fill(b.Context(), subjectTrigger, body, b.N); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		m, err := rb.fetchAck(b.Context(), subjectTrigger, b.N, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(m.rate(), "msg/s")
		reportCPU(b, m.CPU, m.Messages)
	})
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			s := benchSession(b, mode, false)
			if mode == ModeOutOfProcess {
				for _, n := range DefaultTriggerConcurrency() {
					b.Run("bare-rpc-c"+strconv.Itoa(n), func(b *testing.B) {
						opsParallel(b, s, n, s.bareRPC())
					})
				}
			}
			// Each run reads b.N messages from the start of its subject.
			for _, n := range DefaultTriggerConcurrency() {
				b.Run("trigger-c"+strconv.Itoa(n), func(b *testing.B) {
					subject := subjectTrigger + "." + strconv.Itoa(n) + "." + strconv.Itoa(b.N)
					if err := s.fill(b.Context(), subject, b.N, body); err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					m, err := s.triggerRun(b.Context(), subject, n, b.N, time.Hour)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					b.ReportMetric(m.rate(), "msg/s")
					reportCPU(b, m.CPU, m.Messages)
				})
			}
		})
	}
}

// BenchmarkLatency mirrors the latency figures: publish to pipeline start
// at 1,000 msg/s with a trigger of concurrency 8, for b.N messages, in each
// mode. It reports the percentiles as metrics; ns/op is the publish
// interval.
func BenchmarkLatency(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			s := benchSession(b, mode, false)
			b.ResetTimer()
			m, err := s.latencyRun(b.Context(), DefaultLatencyRate, time.Duration(b.N)*time.Second/DefaultLatencyRate, DefaultLatencyConcurrency, DefaultPayloadSize)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(m.Latency.P50), "p50-ms")
			b.ReportMetric(ms(m.Latency.P99), "p99-ms")
			b.ReportMetric(ms(m.Latency.P999), "p99.9-ms")
			reportCPU(b, m.CPU, m.Messages)
		})
	}
}
