package deploy_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/godo"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"

	"github.com/wfeventbus/eventbus/deploy"
	"github.com/wfeventbus/eventbus/internal/natsproc"
)

// bootGuard bounds the wait for the booted cluster; no assertion depends on
// it.
const bootGuard = 2 * time.Minute

// bootedServer is one rendered NATS server to boot locally: the name its
// platform gives it in SERVER_NAME, and its configuration.
type bootedServer struct {
	name string
	conf string
}

// The NATS configuration rendered for each target, booted as three local
// nats-server processes with only its addresses and paths remapped, forms a
// JetStream cluster that takes an R3 stream, and answers the health checks
// the platform makes.
func TestRenderedNATSConfigBoots(t *testing.T) {
	t.Parallel()
	bin := natsproc.Build(t)
	// The ports of both clusters are taken at once, so that no two
	// servers are given the same one.
	ports := freePorts(t, 2*3*3)
	t.Run("kubernetes", func(t *testing.T) {
		t.Parallel()
		res := render(t, loadShop(t), deploy.Options{})
		conf := kubeObjects(t, res)["ConfigMap/shop-bus-config"].(*corev1.ConfigMap).Data["nats.conf"]
		var servers []bootedServer
		for i := range 3 {
			servers = append(servers, bootedServer{name: fmt.Sprintf("shop-bus-%d", i), conf: conf})
		}
		// Every pod has the pid file the pre-stop hook signals, and reaches
		// the others by their names in the headless Service.
		bootRendered(t, bin, "shop-bus", servers, ports[:9], `pid_file: "/var/run/nats/nats.pid"`, "shop-bus-%d.shop-bus-headless:6222")
	})
	t.Run("digitalocean.app_platform", func(t *testing.T) {
		t.Parallel()
		app, _ := loadShopOnAppPlatform(t)
		var spec godo.AppSpec
		strict(t, "app-spec.yaml", render(t, app, deploy.Options{}).Files[0].Data, &spec)
		var servers []bootedServer
		for _, s := range spec.Services {
			env := map[string]string{}
			for _, e := range s.Envs {
				env[e.Key] = e.Value
			}
			conf, err := base64.StdEncoding.DecodeString(env["NATS_CONFIG_B64"])
			if err != nil {
				t.Fatalf("service %s: NATS_CONFIG_B64: %v", s.Name, err)
			}
			servers = append(servers, bootedServer{name: env["SERVER_NAME"], conf: string(conf)})
		}
		if len(servers) != 3 {
			t.Fatalf("%d NATS services, want 3", len(servers))
		}
		// Each server is a service of its own, reached by its name.
		bootRendered(t, bin, "shop-bus", servers, ports[9:], "", "bus-nats-%d:6222")
	})
}

// bootRendered starts servers as local nats-server processes of bin, each
// with its configuration remapped to loopback ports (three a server, from
// free) and a directory of its own: the pid file line pidFile (when not
// empty), the store directory, the listen addresses and the routes, which
// name server j as route (a format taking j). It then creates an R3 stream
// on them, publishes to it, and checks that the cluster is named cluster
// and that every server answers its health checks.
func bootRendered(t *testing.T, bin, cluster string, servers []bootedServer, free []int, pidFile, route string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bootGuard)
	defer cancel()
	type ports struct{ client, cluster, monitor int }
	p := make([]ports, len(servers))
	for i := range p {
		p[i] = ports{free[3*i], free[3*i+1], free[3*i+2]}
	}
	var urls []string
	for i, srv := range servers {
		dir := t.TempDir()
		// Every address and path the platform provides, and nothing
		// else, is replaced by a local one; each must be in the file
		// exactly once.
		local := srv.conf
		replace := func(old, new string) {
			if n := strings.Count(local, old); n != 1 {
				t.Fatalf("the configuration of %s holds %q %d times, want once:\n%s", srv.name, old, n, srv.conf)
			}
			local = strings.Replace(local, old, new, 1)
		}
		replace("listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", p[i].client))
		replace("http: 0.0.0.0:8222", fmt.Sprintf("http: 127.0.0.1:%d", p[i].monitor))
		replace("listen: 0.0.0.0:6222", fmt.Sprintf("listen: 127.0.0.1:%d", p[i].cluster))
		if pidFile != "" {
			replace(pidFile, fmt.Sprintf("pid_file: %q", filepath.Join(dir, "nats.pid")))
		} else if strings.Contains(local, "pid_file") {
			t.Fatalf("the configuration of %s writes a pid file:\n%s", srv.name, srv.conf)
		}
		replace(`store_dir: "/data/jetstream"`, fmt.Sprintf("store_dir: %q", filepath.Join(dir, "jetstream")))
		for j := range servers {
			replace(fmt.Sprintf(`"nats-route://`+route+`"`, j), fmt.Sprintf(`"nats-route://127.0.0.1:%d"`, p[j].cluster))
		}
		file := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(file, []byte(local), 0o600); err != nil {
			t.Fatal(err)
		}
		natsproc.Start(t, bin, srv.name, []string{"SERVER_NAME=" + srv.name}, "--config", file)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p[i].client))
	}

	nc, err := nats.Connect(strings.Join(urls, ","), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The servers elect a meta leader, then the stream its leader; until
	// then requests go unanswered.
	var stream jetstream.Stream
	retry(t, ctx, "create an R3 stream", func(ctx context.Context) error {
		stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: 3})
		return err
	})
	const messages = 100
	for i := range messages {
		id := fmt.Sprintf("order-%d", i)
		retry(t, ctx, "publish "+id, func(ctx context.Context) error {
			_, err := js.Publish(ctx, "orders.created", []byte(id), jetstream.WithMsgID(id))
			return err
		})
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != messages || info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream holds %d messages on %d replicas, cluster %+v; want %d on 3 with a leader", info.State.Msgs, info.Config.Replicas, info.Cluster, messages)
	}
	names := map[string]bool{}
	for _, srv := range servers {
		names[srv.name] = true
	}
	if info.Cluster.Name != cluster || !names[info.Cluster.Leader] {
		t.Errorf("cluster %q led by %q, want cluster %s and one of the servers it was given", info.Cluster.Name, info.Cluster.Leader, cluster)
	}
	t.Logf("stream ORDERS: %d messages, leader %s, replicas %d", info.State.Msgs, info.Cluster.Leader, len(info.Cluster.Replicas)+1)

	for i := range servers {
		for _, path := range []string{"/healthz", "/healthz?js-enabled-only=true", "/healthz?js-server-only=true"} {
			url := fmt.Sprintf("http://127.0.0.1:%d%s", p[i].monitor, path)
			retry(t, ctx, "GET "+url, func(ctx context.Context) error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return err
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %s", resp.Status)
				}
				return nil
			})
		}
	}
}

// retry calls f with a short deadline until it succeeds, failing the test
// when ctx ends first.
func retry(t *testing.T, ctx context.Context, what string, f func(context.Context) error) {
	t.Helper()
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts returns n different loopback ports that were free a moment
// ago: each is held until all are found, so that none is found twice.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
