package deploy

import (
	"fmt"
	"strings"
)

// Ports and paths of the rendered NATS servers.
const (
	clientPort  = 4222
	clusterPort = 6222
	monitorPort = 8222
	// storeDir is where JetStream keeps its streams: the mount point of
	// the server's volume.
	storeDir = "/data/jetstream"
	// pidFile lets the pre-stop hook put the server in lame-duck mode.
	pidFile = "/var/run/nats/nats.pid"
	// serverNameEnv is the variable the configuration takes each server's
	// name from: unique per server, stable across restarts.
	serverNameEnv = "SERVER_NAME"
)

// natsConfig returns the NATS server configuration of p, shared by all of
// its servers: each takes its name from $SERVER_NAME. routes are the route
// URLs of every server, its own included (a server ignores that one).
// withPidFile writes the pid file the Kubernetes pre-stop hook signals.
func natsConfig(p natsPlan, routes []string, withPidFile bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# NATS server of broker module %s, rendered by eventbus deploy.\n", p.module)
	fmt.Fprintf(&b, "server_name: $%s\n", serverNameEnv)
	fmt.Fprintf(&b, "listen: 0.0.0.0:%d\n", clientPort)
	fmt.Fprintf(&b, "http: 0.0.0.0:%d\n", monitorPort)
	if withPidFile {
		fmt.Fprintf(&b, "pid_file: %q\n", pidFile)
	}
	b.WriteString("# On shutdown, hand clients and leaders over to the other servers first.\n")
	b.WriteString("lame_duck_duration: \"30s\"\n")
	b.WriteString("lame_duck_grace_period: \"10s\"\n")
	b.WriteString("jetstream {\n")
	fmt.Fprintf(&b, "  store_dir: %q\n", storeDir)
	b.WriteString("  # Flush to disk every 10s (NATS's default is 2m): an acknowledged message\n")
	b.WriteString("  # is lost only if every replica holding it loses power within that window.\n")
	fmt.Fprintf(&b, "  sync_interval: %q\n", SyncInterval)
	if p.maxFileStore > 0 {
		fmt.Fprintf(&b, "  max_file_store: %d\n", p.maxFileStore)
	}
	if p.maxMemoryStore > 0 {
		fmt.Fprintf(&b, "  max_memory_store: %d\n", p.maxMemoryStore)
	}
	b.WriteString("}\n")
	if p.replicas > 1 {
		b.WriteString("cluster {\n")
		fmt.Fprintf(&b, "  name: %q\n", p.base)
		fmt.Fprintf(&b, "  listen: 0.0.0.0:%d\n", clusterPort)
		b.WriteString("  routes: [\n")
		for _, r := range routes {
			fmt.Fprintf(&b, "    %q\n", r)
		}
		b.WriteString("  ]\n")
		b.WriteString("}\n")
	}
	return b.String()
}
