package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shopApp is an app whose broker names its deploy target.
const shopApp = `modules:
  - name: bus
    type: eventbus.broker
    config: { deploy_target: kubernetes, replicas: 3 }
`

// writeApp writes an app YAML into a directory named dir and returns its
// path.
func writeApp(t *testing.T, dir, content string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), dir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d, "app.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// deploy prints the manifests as one stream on stdout, named after the
// app's directory, and writes them to files with -o.
func TestDeploy(t *testing.T) {
	t.Parallel()
	app := writeApp(t, "shop", shopApp)
	res := runCLI(t, nil, "", "deploy", "--image", "ghcr.io/acme/shop:1", app)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	for _, want := range []string{"# statefulset-shop-bus.yaml\n", "kind: StatefulSet", "# deployment-shop.yaml\n", "EVENTBUS_BUS_URI", "\n---\n"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}

	out := filepath.Join(t.TempDir(), "out")
	res = runCLI(t, nil, "", "deploy", "--image", "ghcr.io/acme/shop:1", "--name", "store", "-o", out, app)
	if res.code != 0 {
		t.Fatalf("-o: exit %d, stderr %q", res.code, res.stderr)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if secret := strings.HasPrefix(e.Name(), "secret-"); secret != (info.Mode().Perm() == 0o600) {
			t.Errorf("%s has mode %v", e.Name(), info.Mode().Perm())
		}
	}
	want := []string{"configmap-store-bus-config.yaml", "configmap-store-config.yaml", "deployment-store.yaml",
		"poddisruptionbudget-store-bus.yaml", "secret-store-secrets.yaml", "service-store-bus-headless.yaml",
		"service-store-bus.yaml", "statefulset-store-bus.yaml"}
	if !slices.Equal(names, want) {
		t.Errorf("files %q, want %q", names, want)
	}
	if got := strings.Fields(res.stdout); len(got) != len(want) {
		t.Errorf("stdout %q, want the %d paths written", res.stdout, len(want))
	}

	res = runCLI(t, nil, "", "deploy", "--image", "ghcr.io/acme/shop:1", "--nats-chart", "-o", out, app)
	if res.code != 0 || !strings.Contains(res.stdout, "values-shop-bus.yaml") {
		t.Errorf("--nats-chart: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

// Wrong targets and options are usage errors that name what is accepted;
// an app that cannot be deployed is a plain error naming the file and line.
func TestDeployErrors(t *testing.T) {
	t.Parallel()
	app := writeApp(t, "shop", shopApp)
	tests := []struct {
		name  string
		args  []string
		code  int
		usage bool
		want  string
	}{
		{name: "unknown target", args: []string{"--target", "aws.ecs", "--image", "x:1", app}, code: 2, usage: true,
			want: "renders digitalocean.app_platform, kubernetes"},
		{name: "no image", args: []string{app}, code: 2, usage: true, want: "image"},
		{name: "chart to stdout", args: []string{"--nats-chart", "--image", "x:1", app}, code: 2, usage: true, want: "-o DIR"},
		{name: "no file", args: []string{"--image", "x:1", filepath.Join(t.TempDir(), "missing.yaml")}, code: 1, want: "missing.yaml"},
		{name: "bad replicas", args: []string{"--image", "x:1", writeApp(t, "bad", strings.Replace(shopApp, "replicas: 3", "replicas: 4", 1))}, code: 1,
			want: "app.yaml:2: module bus: replicas: 4"},
		{name: "short token key", args: []string{"--image", "x:1", "--token-key-file", writeApp(t, "key", "short"), app}, code: 2, usage: true, want: "token key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, nil, "", append([]string{"deploy"}, tt.args...)...)
			if res.code != tt.code || errors.Is(res.err, errUsage) != tt.usage || !strings.Contains(res.stderr, tt.want) {
				t.Fatalf("exit %d, err %v, stderr %q; want exit %d naming %q", res.code, res.err, res.stderr, tt.code, tt.want)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing", res.stdout)
			}
		})
	}
}

func TestAppName(t *testing.T) {
	t.Parallel()
	tests := []struct{ path, want string }{
		{"examples/orders/app.yaml", "orders"},
		{"deploy/Shop_Front.yml", "shop-front"},
		{"/srv/billing.yaml", "billing"},
	}
	for _, tt := range tests {
		if got := appName(tt.path); got != tt.want {
			t.Errorf("appName(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
