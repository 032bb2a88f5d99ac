package deploy

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Deploy targets Render can render.
const (
	TargetKubernetes  = "kubernetes"
	TargetAppPlatform = "digitalocean.app_platform"
)

// Targets returns the deploy targets Render can render.
func Targets() []string { return []string{TargetAppPlatform, TargetKubernetes} }

// Defaults of the broker fields and options Render applies.
const (
	// DefaultReplicas is the number of NATS servers of a broker that sets
	// no replicas: three keep a replicated stream available while one is
	// down.
	DefaultReplicas = 3
	// DefaultAppReplicas is the number of app containers.
	DefaultAppReplicas = 2
	// DefaultCPU, DefaultMemory and DefaultStorage size each NATS server
	// when the broker's limits leave them out.
	DefaultCPU     = "1"
	DefaultMemory  = "2Gi"
	DefaultStorage = "10Gi"
	// SyncInterval is how often each NATS server flushes its file store to
	// disk. A message is acknowledged once a majority of the replicas have
	// it in memory; it is lost only if those replicas all lose power before
	// their next flush. NATS flushes every two minutes by default; ten
	// seconds narrows that window twelvefold for one flush of a few
	// seconds' writes at a time.
	SyncInterval = "10s"
	// TokenKeyEnv is the environment variable of the app's containers that
	// carries the key its replicas sign ack tokens with; the Secret holds
	// it under the same name.
	TokenKeyEnv = "EVENTBUS_TOKEN_KEY"
)

// minVersion is the oldest NATS release the rendered configuration runs
// on: sync_interval and the health endpoint's JetStream checks are 2.10's.
var minVersion = [2]int{2, 10}

// Options say how to render an app.
type Options struct {
	// Target is the platform: TargetKubernetes or TargetAppPlatform. Empty
	// takes the brokers' deploy_target.
	Target string
	// Name names the app's objects; a DNS label (lower-case letters,
	// digits and '-', at most 40 characters so that derived names fit).
	Name string
	// Image is the container image holding the eventbus binary, such as
	// registry.example.com/shop/eventbus:1.4.0. Required.
	Image string
	// Namespace is the Kubernetes namespace of every object; empty leaves
	// it to kubectl's context.
	Namespace string
	// AppReplicas is the number of app containers (default 2).
	AppReplicas int
	// NATSChart renders values for the official NATS Helm chart instead of
	// a StatefulSet of its own (Kubernetes only).
	NATSChart bool
	// TokenKey is the key the app's replicas sign ack tokens with, at least
	// 16 bytes; nil draws a new one from Rand.
	TokenKey []byte
	// Rand is the source of a new token key (default crypto/rand).
	Rand io.Reader
}

// File is one rendered file.
type File struct {
	// Name is the file's name, such as "statefulset-shop-bus.yaml".
	Name string
	// Data is its content: one YAML document.
	Data []byte
	// Manifest says the file is a Kubernetes object, to be applied; the
	// Helm chart's values are not.
	Manifest bool
	// Secret says the file holds the token key: keep it from other users.
	Secret bool
}

// Result is what Render produced.
type Result struct {
	// Target is the platform rendered for.
	Target string
	Files  []File
	// Warnings are broker fields Render read but does not act on.
	Warnings []string
}

// Stream returns the files as one multi-document YAML stream, each
// document headed by a comment with its file name.
func (r *Result) Stream() []byte {
	var b bytes.Buffer
	for i, f := range r.Files {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "# %s\n", f.Name)
		b.Write(f.Data)
	}
	return b.Bytes()
}

// natsPlan is a broker module's NATS cluster, validated.
type natsPlan struct {
	module   string
	line     int
	base     string // name of the broker's objects: <app>-<module>
	replicas int
	version  string
	cpu      resource.Quantity
	memory   resource.Quantity
	storage  resource.Quantity
	// maxFileStore and maxMemoryStore bound JetStream's storage; 0 leaves
	// it to the server (most of the volume, most of the memory).
	maxFileStore   int64
	maxMemoryStore int64
}

// image is the NATS server image of p, the Alpine variant: it has the
// shell the App Platform start command and the Kubernetes probes use.
func (p natsPlan) image() string { return "nats:" + p.version + "-alpine" }

// Render renders app for opts.Target. Errors wrap ErrApp, ErrTarget or
// ErrOptions and name the file and field, or the option, at fault.
func Render(app *App, opts Options) (*Result, error) {
	target, err := chooseTarget(app, opts.Target)
	if err != nil {
		return nil, err
	}
	if err := opts.check(target); err != nil {
		return nil, err
	}
	res := &Result{Target: target}
	var plans []natsPlan
	for _, b := range app.Brokers {
		p, warnings, err := planNATS(app.File, opts.Name, b)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
		res.Warnings = append(res.Warnings, warnings...)
	}
	key := opts.TokenKey
	if key == nil {
		src := opts.Rand
		if src == nil {
			src = rand.Reader
		}
		key = make([]byte, 32)
		if _, err := io.ReadFull(src, key); err != nil {
			return nil, fmt.Errorf("draw a token key: %w", err)
		}
	}
	r := renderer{app: app, opts: opts, plans: plans, tokenKey: base64.StdEncoding.EncodeToString(key)}
	switch target {
	case TargetKubernetes:
		res.Files, err = r.kubernetes()
	case TargetAppPlatform:
		res.Files, err = r.appPlatform()
	}
	if err != nil {
		return nil, err
	}
	if target == TargetAppPlatform {
		for _, b := range app.Brokers {
			if b.Config.GetLimits().GetStorage() != "" {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s:%d: module %s: limits.storage is not applied: App Platform gives services no volumes", app.File, b.Line, b.Module))
			}
		}
	}
	return res, nil
}

// renderer holds what the renderers of every target share.
type renderer struct {
	app      *App
	opts     Options
	plans    []natsPlan
	tokenKey string
}

// chooseTarget returns the target to render: the option when given, the
// brokers' deploy_target otherwise; they must agree.
func chooseTarget(app *App, option string) (string, error) {
	target := option
	if target != "" && !slices.Contains(Targets(), target) {
		return "", fmt.Errorf("%w: %q; eventbus deploy renders %s", ErrTarget, target, strings.Join(Targets(), ", "))
	}
	for _, b := range app.Brokers {
		t := strings.TrimSpace(b.Config.GetDeployTarget())
		if t == "" {
			continue
		}
		if target == "" {
			target = t
		}
		if t != target {
			return "", fmt.Errorf("%w: %s:%d: module %s: deploy_target %q, but rendering for %q; make them agree",
				ErrTarget, app.File, b.Line, b.Module, t, target)
		}
	}
	if target == "" {
		return "", fmt.Errorf("%w: %s: no broker names a deploy_target; choose one of %s",
			ErrTarget, app.File, strings.Join(Targets(), ", "))
	}
	if !slices.Contains(Targets(), target) {
		return "", fmt.Errorf("%w: %s: deploy_target %q; eventbus deploy renders %s (pass --target)",
			ErrTarget, app.File, target, strings.Join(Targets(), ", "))
	}
	return target, nil
}

// check validates the options for target.
func (o *Options) check(target string) error {
	if errs := validation.IsDNS1123Label(o.Name); len(errs) > 0 || len(o.Name) > 40 {
		return fmt.Errorf("%w: name %q: a lower-case DNS label of at most 40 characters (letters, digits, '-')", ErrOptions, o.Name)
	}
	if o.Image == "" {
		return fmt.Errorf("%w: image: the container image holding the eventbus binary is required", ErrOptions)
	}
	if strings.ContainsAny(o.Image, " \t\n") {
		return fmt.Errorf("%w: image %q must not contain whitespace", ErrOptions, o.Image)
	}
	if o.Namespace != "" {
		if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
			return fmt.Errorf("%w: namespace %q: %s", ErrOptions, o.Namespace, strings.Join(errs, "; "))
		}
	}
	switch {
	case o.AppReplicas == 0:
		o.AppReplicas = DefaultAppReplicas
	case o.AppReplicas < 0:
		return fmt.Errorf("%w: app replicas %d must be at least 1", ErrOptions, o.AppReplicas)
	}
	if o.TokenKey != nil && len(o.TokenKey) < 16 {
		return fmt.Errorf("%w: token key: %d bytes, at least 16 are needed", ErrOptions, len(o.TokenKey))
	}
	if o.NATSChart && target != TargetKubernetes {
		return fmt.Errorf("%w: the NATS Helm chart is for %s, not %s", ErrOptions, TargetKubernetes, target)
	}
	return nil
}

var versionPattern = regexp.MustCompile(`^v?(\d+)\.(\d+)(\.\d+)?$`)

// planNATS validates a broker module's fields for deployment. warnings
// name the fields it reads but does not act on.
func planNATS(file, app string, b Broker) (natsPlan, []string, error) {
	cfg := b.Config
	at := fmt.Sprintf("%s:%d: module %s", file, b.Line, b.Module)
	fail := func(format string, args ...any) (natsPlan, []string, error) {
		return natsPlan{}, nil, fmt.Errorf("%w: %s: %s", ErrApp, at, fmt.Sprintf(format, args...))
	}
	if p := strings.ToLower(strings.TrimSpace(cfg.GetProvider())); p != "" && p != "nats" {
		return fail("provider %q: eventbus deploy renders NATS brokers only", cfg.GetProvider())
	}
	if cfg.GetDsn() != "" || cfg.GetUrl() != "" || len(cfg.GetUrls()) > 0 {
		return fail("dsn/url/urls are set, so the app would not use the cluster deploy renders; remove them (the app's containers get %s)", urlEnvVar(b.Module))
	}
	name := app + "-" + strings.ToLower(b.Module)
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 || len(name) > 52 {
		return fail("objects would be named %q, which is no DNS label of at most 52 characters (lower-case letters, digits, '-'); rename the module or pass another app name", name)
	}
	p := natsPlan{module: b.Module, line: b.Line, base: name, replicas: int(cfg.GetReplicas())}
	switch p.replicas {
	case 0:
		p.replicas = DefaultReplicas
	case 1, 3, 5:
	default:
		return fail("replicas: %d; a NATS cluster has 1, 3 or 5 servers (an odd number keeps a majority when servers fail)", p.replicas)
	}
	p.version = strings.TrimPrefix(strings.TrimSpace(cfg.GetVersion()), "v")
	if p.version == "" {
		p.version = server.VERSION
	}
	m := versionPattern.FindStringSubmatch(p.version)
	if m == nil {
		return fail("version %q: a NATS release such as 2.10 or %s", cfg.GetVersion(), server.VERSION)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major < minVersion[0] || major == minVersion[0] && minor < minVersion[1] {
		return fail("version %q: the rendered configuration needs NATS %d.%d or later", cfg.GetVersion(), minVersion[0], minVersion[1])
	}
	quantity := func(field, value, def string) (resource.Quantity, error) {
		if value == "" {
			value = def
		}
		q, err := resource.ParseQuantity(value)
		if err != nil || q.Sign() <= 0 {
			return q, fmt.Errorf("%w: %s: limits.%s %q: a positive quantity such as %s", ErrApp, at, field, value, def)
		}
		return q, nil
	}
	var err error
	lim := cfg.GetLimits()
	if p.cpu, err = quantity("cpu", lim.GetCpu(), DefaultCPU); err != nil {
		return natsPlan{}, nil, err
	}
	if p.memory, err = quantity("memory", lim.GetMemory(), DefaultMemory); err != nil {
		return natsPlan{}, nil, err
	}
	if p.storage, err = quantity("storage", lim.GetStorage(), DefaultStorage); err != nil {
		return natsPlan{}, nil, err
	}
	var warnings []string
	if js := cfg.GetJetstream(); js != nil {
		p.maxFileStore, p.maxMemoryStore = js.GetMaxStorageBytes(), js.GetMaxMemoryBytes()
		if p.maxFileStore < 0 || p.maxMemoryStore < 0 {
			return fail("jetstream: max_storage_bytes and max_memory_bytes must not be negative")
		}
		if p.maxFileStore > p.storage.Value() {
			return fail("jetstream.max_storage_bytes %d is more than the volume, limits.storage %s", p.maxFileStore, p.storage.String())
		}
		if p.maxMemoryStore > p.memory.Value() {
			return fail("jetstream.max_memory_bytes %d is more than the memory, limits.memory %s", p.maxMemoryStore, p.memory.String())
		}
		if js.GetMaxAge() != nil {
			warnings = append(warnings, at+": jetstream.max_age is not a server setting and is not applied; set max_age on the eventbus.stream modules")
		}
		if !js.GetEnabled() && (p.maxFileStore == 0 && p.maxMemoryStore == 0 && js.GetMaxAge() == nil) {
			warnings = append(warnings, at+": jetstream.enabled is false, but the broker needs JetStream; the rendered servers run it")
		}
	}
	if cfg.GetEmbedded() != nil {
		warnings = append(warnings, at+": embedded settings apply to the embedded broker only and are not applied")
	}
	if cfg.GetPollInterval() != nil || cfg.GetBrokerTarget() != "" || cfg.GetMaxConns() != 0 {
		warnings = append(warnings, at+": poll_interval, broker_target and max_conns are PostgreSQL settings and are not applied")
	}
	return p, warnings, nil
}
