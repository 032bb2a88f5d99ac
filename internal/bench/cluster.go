package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus/embedded"
)

// clusterSize is the servers of the cluster scenarios, as `eventbus server
// --cluster 3` runs them.
const clusterSize = 3

// IDCluster is the ID of a raw sync publish to a stream of the given
// replicas on a local 3-node cluster, with flush "" (the servers' default)
// or "sync_always", and callers "" (one) or "xN" (PublishConcurrency).
func IDCluster(flush string, replicas int, callers string) string {
	id := "cluster."
	if flush != "" {
		id += flush + "."
	}
	id += fmt.Sprintf("r%d.raw-sync", replicas)
	if callers != "" {
		id += "-" + callers
	}
	return id
}

// clusterSteps is the figures the cluster phase adds.
func (cfg Config) clusterSteps() int {
	if !cfg.Cluster {
		return 0
	}
	return 8
}

// cluster measures synchronous nats.go publishes to R1 and R3 file-store
// streams on a local 3-node cluster (every server in this process), with
// the servers' default flush and with sync_always, each with one caller and
// with PublishConcurrency callers. The publisher is connected to a server
// that does not lead the stream, as two apps in three are, so that both R1
// and R3 take a route to the leader; R3 adds the replication to a majority
// before the ack. An R3 figure's ceiling is the R1 figure of the same flush
// and callers; a sync_always figure's the default flush's.
func (r *run) cluster(ctx context.Context, dir string) error {
	for _, flush := range []string{"", "sync_always"} {
		if err := r.clusterFlush(ctx, filepath.Join(dir, "flush"+flush), flush); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) clusterFlush(ctx context.Context, dir, flush string) error {
	cfg := r.cfg
	c, err := embedded.StartCluster(ctx, embedded.ClusterConfig{
		Size: clusterSize, StoreDir: dir, Port: embedded.RandomPort, ClusterPort: embedded.RandomPort,
		SyncAlways: flush == "sync_always", Logger: cfg.Logger,
	})
	if err != nil {
		return fail("cluster "+flush, err)
	}
	defer func() { _ = c.Shutdown(context.WithoutCancel(ctx)) }()
	flushName := "the servers' default flush"
	if flush != "" {
		flushName = flush
	}
	for _, replicas := range []int{1, 3} {
		js, nc, err := clusterPublisher(ctx, c, replicas)
		if err != nil {
			return fail(IDCluster(flush, replicas, ""), err)
		}
		publish := func(ctx context.Context) (int, error) {
			if _, err := js.Publish(ctx, subjectPublish, r.body); err != nil {
				return 0, err
			}
			return 1, nil
		}
		for _, callers := range []string{"", "xN"} {
			id := IDCluster(flush, replicas, callers)
			workers, who := 1, "1 caller"
			if callers != "" {
				workers, who = cfg.PublishConcurrency, fmt.Sprintf("%d callers", cfg.PublishConcurrency)
			}
			m, err := drive(ctx, workers, cfg.Warmup, cfg.Duration, func() time.Duration { return cpuTime(nil) }, publish)
			if err != nil {
				nc.Close()
				return fail(id, err)
			}
			res := Result{ID: id, Name: fmt.Sprintf("raw nats.go sync publish to an R%d stream on a local %d-node cluster, %s, %s", replicas, clusterSize, flushName, who)}
			switch {
			case replicas > 1:
				res.Ceiling = IDCluster(flush, 1, callers)
			case flush != "":
				res.Ceiling = IDCluster("", replicas, callers)
			}
			r.add(res, m)
		}
		nc.Close()
	}
	return nil
}

// clusterPublisher creates the bench stream with replicas on c and returns
// a client connected to a server that does not lead it.
func clusterPublisher(ctx context.Context, c *embedded.Cluster, replicas int) (jetstream.JetStream, *nats.Conn, error) {
	admin, err := nats.Connect(c.URLs())
	if err != nil {
		return nil, nil, err
	}
	defer admin.Close()
	ajs, err := jetstream.New(admin)
	if err != nil {
		return nil, nil, err
	}
	name := fmt.Sprintf("%s_R%d", streamName, replicas)
	if replicas > 1 {
		// One stream at a time takes the bench subjects.
		_ = ajs.DeleteStream(ctx, streamName+"_R1")
	}
	if _, err := embedded.CreateStream(ctx, ajs, jetstream.StreamConfig{
		Name: name, Subjects: []string{streamSubjects}, Storage: jetstream.FileStorage, Replicas: replicas,
	}); err != nil {
		return nil, nil, err
	}
	leader, err := c.WaitStreamPublishable(ctx, name, subjectPublish)
	if err != nil {
		return nil, nil, err
	}
	var url string
	for i, n := range c.Names() {
		if n != leader {
			url = c.ClientURLs()[i]
			break
		}
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc, nil
}
