package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wfeventbus/eventbus/deploy"
)

// deployOptions are the flags of the deploy command.
type deployOptions struct {
	target       string
	name         string
	image        string
	namespace    string
	appReplicas  int
	natsChart    bool
	tokenKeyFile string
	outDir       string
}

// newDeployCmd builds `eventbus deploy`.
func newDeployCmd(d deps) *cobra.Command {
	o := &deployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy APP.yaml",
		Short: "Render what runs an app and its NATS cluster in production",
		Long: "deploy renders the manifests that run an app and its broker: for each\n" +
			"eventbus.broker module a NATS JetStream cluster sized by its replicas,\n" +
			"version, jetstream and limits fields, and the app itself running\n" +
			"`eventbus run` against it.\n\n" +
			"  kubernetes: a StatefulSet per broker (headless Service for routes, one\n" +
			"    volume per server, PodDisruptionBudget, topology spread, monitoring\n" +
			"    port, resource limits), or with --nats-chart values for the official\n" +
			"    NATS Helm chart; and the app's Deployment, its YAML in a ConfigMap and\n" +
			"    its token key in a Secret.\n" +
			"  digitalocean.app_platform: an App Platform app spec with a service per\n" +
			"    NATS server and a worker running the app.\n\n" +
			"The target is --target, else the brokers' deploy_target. The manifests go\n" +
			"to stdout as one YAML stream, or with -o into a directory, a file each.",
		Example: "  eventbus deploy --target kubernetes --image registry.example.com/shop/eventbus:1.0 app.yaml | kubectl apply -f -\n" +
			"  eventbus deploy --target kubernetes --nats-chart --image ghcr.io/acme/shop:1.0 -o deploy/ app.yaml\n" +
			"  eventbus deploy --target digitalocean.app_platform --image registry.digitalocean.com/acme/shop:1.0 -o . app.yaml",
		Args: withUsageErrors(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.natsChart && o.outDir == "" {
				return usageError(cmd, errors.New("--nats-chart writes the chart's values beside the manifests: pass -o DIR"))
			}
			return runDeploy(cmd.Context(), d, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "", "platform: "+strings.Join(deploy.Targets(), " or ")+" (default: the brokers' deploy_target)")
	f.StringVar(&o.name, "name", "", "name of the app's objects (default: from the file name, or its directory for app.yaml)")
	f.StringVar(&o.image, "image", "", "container image holding the eventbus binary (required)")
	f.StringVar(&o.namespace, "namespace", "", "Kubernetes namespace of every object (default: kubectl's)")
	f.IntVar(&o.appReplicas, "app-replicas", deploy.DefaultAppReplicas, "number of app containers")
	f.BoolVar(&o.natsChart, "nats-chart", false, "render values for the official NATS Helm chart instead of a StatefulSet (kubernetes)")
	f.StringVar(&o.tokenKeyFile, "token-key-file", "", "file holding the key the app's replicas sign ack tokens with (default: a new random key)")
	f.StringVarP(&o.outDir, "output", "o", "", "write one file per manifest into this directory instead of stdout")
	return cmd
}

// runDeploy renders the app at path and writes the result.
func runDeploy(_ context.Context, d deps, o *deployOptions, path string) error {
	app, err := deploy.LoadApp(path)
	if err != nil {
		return err
	}
	opts := deploy.Options{
		Target:      o.target,
		Name:        o.name,
		Image:       o.image,
		Namespace:   o.namespace,
		AppReplicas: o.appReplicas,
		NATSChart:   o.natsChart,
	}
	if opts.Name == "" {
		opts.Name = appName(path)
	}
	if o.tokenKeyFile != "" {
		key, err := os.ReadFile(o.tokenKeyFile)
		if err != nil {
			return fmt.Errorf("%w: --token-key-file: %w", errUsage, err)
		}
		opts.TokenKey = []byte(strings.TrimSpace(string(key)))
	}
	res, err := deploy.Render(app, opts)
	if errors.Is(err, deploy.ErrOptions) || errors.Is(err, deploy.ErrTarget) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(d.stderr, "eventbus deploy: warning: %s\n", w)
	}
	if o.outDir == "" {
		_, err := d.stdout.Write(res.Stream())
		return err
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	for _, f := range res.Files {
		perm := os.FileMode(0o644)
		if f.Secret {
			perm = 0o600
		}
		p := filepath.Join(o.outDir, f.Name)
		if err := os.WriteFile(p, f.Data, perm); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		fmt.Fprintln(d.stdout, p)
	}
	return nil
}

var nonLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// appName derives an app's name from its file: the file name without its
// extension, or the directory's name for a file called app.yaml, turned
// into a DNS label.
func appName(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if base == "app" {
		if abs, err := filepath.Abs(path); err == nil {
			base = filepath.Base(filepath.Dir(abs))
		}
	}
	name := strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(base), "-"), "-")
	return name[:min(len(name), 40)]
}
