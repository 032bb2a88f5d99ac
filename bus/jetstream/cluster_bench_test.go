package jetstream_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

// BenchmarkClusterPublish measures publishing to a file-store stream on a
// local 3-node cluster (as `eventbus server --cluster 3` runs it, every
// server in one process), for each combination of
//
//   - flush: the servers' default (the kernel writes to disk when it
//     chooses, with a forced flush every two minutes) or sync_always (a
//     flush per write before the ack);
//   - replicas: 1 (an R1 stream, stored on one server) or 3 (R3: stored
//     once two servers have it);
//   - how: one caller publishing and waiting for each ack (serial, with
//     p50/p99 per publish), 8 callers doing the same (x8), or batches of
//     1,000 published at once and acked together (batch).
//
// The publishing bus is connected to a server that does not lead the
// stream, as two apps in three are, so that R1 and R3 both take a route
// to the leader. msg/s is the figure to compare.
//
//	go test -run '^$' -bench BenchmarkClusterPublish -benchtime 3s -count 3 ./bus/jetstream/
func BenchmarkClusterPublish(b *testing.B) {
	for _, flush := range []string{"default", "sync_always"} {
		b.Run("flush="+flush, func(b *testing.B) {
			c := startBenchCluster(b, flush == "sync_always")
			for _, replicas := range []int{1, 3} {
				b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
					for _, how := range []string{"serial", "x8", "batch"} {
						b.Run(how, func(b *testing.B) {
							benchClusterPublish(b, c, replicas, how)
						})
					}
				})
			}
		})
	}
}

// benchCount numbers the streams of the benchmark's runs.
type benchCount struct {
	mu sync.Mutex
	n  int
}

func (c *benchCount) next() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

// benchCluster is a cluster and a counter naming its streams.
type benchCluster struct {
	c       *embedded.Cluster
	streams benchCount
}

func startBenchCluster(b *testing.B, syncAlways bool) *benchCluster {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := embedded.StartCluster(ctx, embedded.ClusterConfig{
		StoreDir: b.TempDir(), Port: embedded.RandomPort, ClusterPort: embedded.RandomPort, SyncAlways: syncAlways,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	return &benchCluster{c: c}
}

func benchClusterPublish(b *testing.B, bc *benchCluster, replicas int, how string) {
	ctx := context.Background()
	admin := benchBus(b, bc.c.ClientURLs())
	name := fmt.Sprintf("BENCH%d", bc.streams.next())
	if _, err := admin.EnsureStream(ctx, bus.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Replicas: replicas, Storage: bus.StorageFile}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = admin.DeleteStream(context.Background(), name) }()
	subject := name + ".x"
	leader, err := bc.c.WaitStreamPublishable(ctx, name, subject)
	if err != nil {
		b.Fatal(err)
	}
	// The publisher is on a server that does not lead the stream, as two
	// apps in three are: each publish takes a route to the leader.
	var url string
	for i, n := range bc.c.Names() {
		if n != leader {
			url = bc.c.ClientURLs()[i]
			break
		}
	}
	jb := benchBus(b, []string{url})
	msg := bus.OutgoingMessage{Subject: subject, Payload: make([]byte, 128)}
	publish := func() {
		if _, err := jb.Publish(ctx, msg); err != nil {
			b.Error(err)
		}
	}
	for range 100 { // warm up the connection and the stream
		publish()
	}

	perOp := 1
	var lat []time.Duration
	b.ResetTimer()
	switch how {
	case "serial":
		lat = make([]time.Duration, 0, b.N)
		for range b.N {
			start := time.Now()
			publish()
			lat = append(lat, time.Since(start))
		}
	case "x8":
		var wg sync.WaitGroup
		next := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				for range next {
					publish()
				}
			})
		}
		for range b.N {
			next <- struct{}{}
		}
		close(next)
		wg.Wait()
	case "batch":
		perOp = 1000
		batch := make([]bus.OutgoingMessage, perOp)
		for i := range batch {
			batch[i] = msg
		}
		for range b.N {
			res, err := jb.PublishBatch(ctx, batch)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "msg/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// benchBus returns a bus on a connection to urls, closed when b ends.
func benchBus(b *testing.B, urls []string) *jetstream.Bus {
	b.Helper()
	jb, _ := connectBus(b, jetstream.ConnectConfig{URLs: urls, Name: b.Name()}, nil)
	return jb
}
