package deploy_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/digitalocean/godo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/wfeventbus/eventbus/deploy"
	"github.com/wfeventbus/eventbus/eventbus"
)

// fixedKey is the token key the tests render with.
var fixedKey = bytes.Repeat([]byte{7}, 32)

func loadShop(t *testing.T) *deploy.App {
	t.Helper()
	app, err := deploy.LoadApp("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// loadShopOnAppPlatform loads testdata/shop.yaml with its broker's
// deploy_target set to digitalocean.app_platform, and returns it with the
// YAML it was parsed from.
func loadShopOnAppPlatform(t *testing.T) (*deploy.App, []byte) {
	t.Helper()
	data, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("deploy_target: kubernetes"), []byte("deploy_target: digitalocean.app_platform"), 1)
	app, err := deploy.ParseApp("shop.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return app, data
}

func render(t *testing.T, app *deploy.App, opts deploy.Options) *deploy.Result {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "shop"
	}
	if opts.Image == "" {
		opts.Image = "ghcr.io/acme/shop:1.0"
	}
	opts.TokenKey = fixedKey
	res, err := deploy.Render(app, opts)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return res
}

// strict decodes a YAML document into out, failing on any field out does
// not have: a field the platform's API does not know fails the test.
func strict(t *testing.T, name string, data []byte, out any) {
	t.Helper()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s does not decode strictly into %T: %v", name, out, err)
	}
}

// kubeObjects decodes every manifest strictly into its Kubernetes type and
// returns them by kind and name.
func kubeObjects(t *testing.T, res *deploy.Result) map[string]any {
	t.Helper()
	objs := map[string]any{}
	for _, f := range res.Files {
		if !f.Manifest {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(f.Data, &tm); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		var obj any
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1/Secret":
			obj = &corev1.Secret{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "apps/v1/StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "apps/v1/Deployment":
			obj = &appsv1.Deployment{}
		case "policy/v1/PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		default:
			t.Fatalf("%s: unexpected %s %s", f.Name, tm.APIVersion, tm.Kind)
		}
		strict(t, f.Name, f.Data, obj)
		name := obj.(metav1.Object).GetName()
		if f.Name != strings.ToLower(tm.Kind)+"-"+name+".yaml" {
			t.Errorf("file %s holds %s %s", f.Name, tm.Kind, name)
		}
		objs[tm.Kind+"/"+name] = obj
	}
	return objs
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	app := loadShop(t)
	res := render(t, app, deploy.Options{Namespace: "prod", AppReplicas: 4})
	if res.Target != deploy.TargetKubernetes || len(res.Warnings) != 0 {
		t.Fatalf("target %s, warnings %q; want kubernetes from deploy_target, none", res.Target, res.Warnings)
	}
	objs := kubeObjects(t, res)
	want := []string{"ConfigMap/shop-bus-config", "Service/shop-bus-headless", "Service/shop-bus", "StatefulSet/shop-bus",
		"PodDisruptionBudget/shop-bus", "Secret/shop-secrets", "ConfigMap/shop-config", "Deployment/shop"}
	for _, k := range want {
		if objs[k] == nil {
			t.Errorf("no %s among %d objects", k, len(objs))
		}
	}
	if len(objs) != len(want) {
		t.Errorf("%d objects, want %d", len(objs), len(want))
	}
	for k, o := range objs {
		if ns := o.(metav1.Object).GetNamespace(); ns != "prod" {
			t.Errorf("%s in namespace %q, want prod", k, ns)
		}
	}

	sts := objs["StatefulSet/shop-bus"].(*appsv1.StatefulSet)
	if *sts.Spec.Replicas != 3 || sts.Spec.ServiceName != "shop-bus-headless" || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("StatefulSet spec %+v", sts.Spec)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if c.Image != "nats:2.11-alpine" {
		t.Errorf("NATS image %s, want nats:2.11-alpine from version", c.Image)
	}
	if c.Resources.Limits.Cpu().String() != "2" || c.Resources.Limits.Memory().String() != "4Gi" {
		t.Errorf("NATS limits %v, want cpu 2 memory 4Gi", c.Resources.Limits)
	}
	if q := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "20Gi" {
		t.Errorf("volume %s, want 20Gi from limits.storage", q.String())
	}
	if c.StartupProbe == nil || c.ReadinessProbe == nil || c.LivenessProbe == nil || c.Lifecycle.PreStop == nil {
		t.Errorf("NATS container lacks probes or its pre-stop hook: %+v", c)
	}
	var keys []string
	for _, tsc := range sts.Spec.Template.Spec.TopologySpreadConstraints {
		keys = append(keys, tsc.TopologyKey+"="+string(tsc.WhenUnsatisfiable))
	}
	if !slices.Equal(keys, []string{"kubernetes.io/hostname=DoNotSchedule", "topology.kubernetes.io/zone=ScheduleAnyway"}) {
		t.Errorf("topology spread %q", keys)
	}
	if !objs["Service/shop-bus-headless"].(*corev1.Service).Spec.PublishNotReadyAddresses {
		t.Error("headless Service does not publish servers before they are ready; routes could never form")
	}
	if pdb := objs["PodDisruptionBudget/shop-bus"].(*policyv1.PodDisruptionBudget); pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	conf := objs["ConfigMap/shop-bus-config"].(*corev1.ConfigMap).Data["nats.conf"]
	for _, line := range []string{`sync_interval: "10s"`, "max_file_store: 8000000000", "max_memory_store: 268435456",
		`"nats-route://shop-bus-2.shop-bus-headless:6222"`, `name: "shop-bus"`} {
		if !strings.Contains(conf, line) {
			t.Errorf("nats.conf lacks %q:\n%s", line, conf)
		}
	}

	dep := objs["Deployment/shop"].(*appsv1.Deployment)
	if *dep.Spec.Replicas != 4 {
		t.Errorf("app replicas %d, want 4", *dep.Spec.Replicas)
	}
	ac := dep.Spec.Template.Spec.Containers[0]
	if ac.Image != "ghcr.io/acme/shop:1.0" || !slices.Equal(ac.Args[:1], []string{"run"}) || ac.Args[len(ac.Args)-1] != "/etc/eventbus/app.yaml" {
		t.Errorf("app container %s %q", ac.Image, ac.Args)
	}
	urlVar := eventbus.URLEnvVar("bus")
	wantURLs := "nats://shop-bus-0.shop-bus-headless:4222,nats://shop-bus-1.shop-bus-headless:4222,nats://shop-bus-2.shop-bus-headless:4222"
	if i := slices.IndexFunc(ac.Env, func(e corev1.EnvVar) bool { return e.Name == urlVar }); i < 0 || ac.Env[i].Value != wantURLs {
		t.Errorf("app env %+v, want %s=%s", ac.Env, urlVar, wantURLs)
	}
	if len(ac.EnvFrom) != 1 || ac.EnvFrom[0].SecretRef.Name != "shop-secrets" {
		t.Errorf("app envFrom %+v, want the Secret", ac.EnvFrom)
	}
	data, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := objs["ConfigMap/shop-config"].(*corev1.ConfigMap).Data["app.yaml"]; got != string(data) {
		t.Errorf("ConfigMap holds\n%s\nwant the app YAML as written", got)
	}
	if got := objs["Secret/shop-secrets"].(*corev1.Secret).StringData[deploy.TokenKeyEnv]; got != base64.StdEncoding.EncodeToString(fixedKey) {
		t.Errorf("Secret token key %q, want the given key", got)
	}
	if deploy.TokenKeyEnv != eventbus.TokenKeyEnv {
		t.Errorf("the Secret holds the key as %s, the app's brokers read %s", deploy.TokenKeyEnv, eventbus.TokenKeyEnv)
	}
	for _, f := range res.Files {
		if f.Secret != strings.HasPrefix(f.Name, "secret-") {
			t.Errorf("%s: Secret = %v", f.Name, f.Secret)
		}
	}

	// The stream is every file, each a document of its own.
	docs := strings.Split(string(res.Stream()), "\n---\n")
	if len(docs) != len(res.Files) {
		t.Errorf("stream has %d documents, want %d", len(docs), len(res.Files))
	}
}

// A new token key is drawn for every render without one; a given key is
// used as is.
func TestTokenKey(t *testing.T) {
	t.Parallel()
	app := loadShop(t)
	keys := map[string]bool{}
	for range 2 {
		res, err := deploy.Render(app, deploy.Options{Name: "shop", Image: "shop:1"})
		if err != nil {
			t.Fatal(err)
		}
		keys[kubeObjects(t, res)["Secret/shop-secrets"].(*corev1.Secret).StringData[deploy.TokenKeyEnv]] = true
	}
	if len(keys) != 2 {
		t.Errorf("two renders drew %d distinct keys, want 2", len(keys))
	}
	res, err := deploy.Render(app, deploy.Options{Name: "shop", Image: "shop:1", Rand: bytes.NewReader(fixedKey)})
	if err != nil {
		t.Fatal(err)
	}
	if got := kubeObjects(t, res)["Secret/shop-secrets"].(*corev1.Secret).StringData[deploy.TokenKeyEnv]; got != base64.StdEncoding.EncodeToString(fixedKey) {
		t.Errorf("key %q, want the one Rand gave", got)
	}
}

func TestNATSChart(t *testing.T) {
	t.Parallel()
	res := render(t, loadShop(t), deploy.Options{NATSChart: true})
	var values map[string]any
	names := map[string]bool{}
	for _, f := range res.Files {
		names[f.Name] = true
		if f.Name == "values-shop-bus.yaml" {
			if f.Manifest {
				t.Error("chart values marked as a manifest")
			}
			if err := yaml.UnmarshalStrict(f.Data, &values); err != nil {
				t.Fatal(err)
			}
		}
	}
	if values == nil || names["statefulset-shop-bus.yaml"] || !names["deployment-shop.yaml"] {
		t.Fatalf("files %v: want chart values instead of the StatefulSet, and the app", names)
	}
	kubeObjects(t, res)
	get := func(path string) any {
		var v any = values
		for _, k := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	for path, want := range map[string]any{
		"fullnameOverride":                        "shop-bus",
		"config.cluster.enabled":                  true,
		"config.cluster.replicas":                 float64(3),
		"config.jetstream.enabled":                true,
		"config.jetstream.fileStore.pvc.size":     "20Gi",
		"config.jetstream.merge.sync_interval":    deploy.SyncInterval,
		"config.jetstream.merge.max_file_store":   float64(8000000000),
		"container.image.tag":                     "2.11-alpine",
		"container.merge.resources.limits.memory": "4Gi",
		"podDisruptionBudget.enabled":             true,
	} {
		if got := get(path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	spread, _ := get("podTemplate.topologySpreadConstraints").(map[string]any)
	if host, _ := spread["kubernetes.io/hostname"].(map[string]any); host["whenUnsatisfiable"] != "DoNotSchedule" {
		t.Errorf("topology spread %v, want one server per node", spread)
	}
}

func TestAppPlatform(t *testing.T) {
	t.Parallel()
	app, data := loadShopOnAppPlatform(t)
	res := render(t, app, deploy.Options{Image: "registry.digitalocean.com/acme/shop:1.0", AppReplicas: 3})
	if len(res.Files) != 1 || res.Files[0].Name != "app-spec.yaml" || !res.Files[0].Secret {
		t.Fatalf("files %+v, want app-spec.yaml holding the token key", res.Files)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "limits.storage") {
		t.Errorf("warnings %q, want one about limits.storage", res.Warnings)
	}
	var spec godo.AppSpec
	strict(t, "app-spec.yaml", res.Files[0].Data, &spec)
	if spec.Name != "shop" || len(spec.Services) != 3 || len(spec.Workers) != 1 {
		t.Fatalf("spec %s: %d services, %d workers; want 3 NATS services and the app", spec.Name, len(spec.Services), len(spec.Workers))
	}
	for i, s := range spec.Services {
		if want := fmt.Sprintf("bus-nats-%d", i); s.Name != want || s.InstanceCount != 1 || s.Image.Tag != "2.11-alpine" ||
			!slices.Equal(s.InternalPorts, []int64{4222, 6222}) || s.InstanceSizeSlug != "apps-s-2vcpu-4gb" {
			t.Errorf("service %d: %s x%d tag %s ports %v size %s", i, s.Name, s.InstanceCount, s.Image.Tag, s.InternalPorts, s.InstanceSizeSlug)
		}
		env := map[string]string{}
		for _, e := range s.Envs {
			env[e.Key] = e.Value
		}
		conf, err := base64.StdEncoding.DecodeString(env["NATS_CONFIG_B64"])
		if err != nil || !strings.Contains(string(conf), `"nats-route://bus-nats-2:6222"`) || env["SERVER_NAME"] != s.Name {
			t.Errorf("service %s: config %q (%v), server name %q", s.Name, conf, err, env["SERVER_NAME"])
		}
	}
	w := spec.Workers[0]
	if w.InstanceCount != 3 || w.Image.RegistryType != godo.ImageSourceSpecRegistryType_DOCR || w.Image.Repository != "shop" || w.Image.Tag != "1.0" {
		t.Errorf("worker x%d image %+v", w.InstanceCount, w.Image)
	}
	env := map[string]*godo.AppVariableDefinition{}
	for _, e := range w.Envs {
		env[e.Key] = e
	}
	if e := env[eventbus.URLEnvVar("bus")]; e == nil || e.Value != "nats://bus-nats-0:4222,nats://bus-nats-1:4222,nats://bus-nats-2:4222" {
		t.Errorf("worker URL variable %+v", e)
	}
	if e := env[deploy.TokenKeyEnv]; e == nil || e.Type != godo.AppVariableType_Secret {
		t.Errorf("token key variable %+v, want a SECRET", e)
	}
	if e := env["EVENTBUS_APP_YAML_B64"]; e == nil || e.Value != base64.StdEncoding.EncodeToString(data) {
		t.Errorf("worker does not carry the app YAML as written")
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	broker := func(config string) *deploy.App {
		t.Helper()
		app, err := deploy.ParseApp("app.yaml", []byte("modules:\n  - name: bus\n    type: eventbus.broker\n    config: "+config+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		return app
	}
	cases := []struct {
		name string
		app  *deploy.App
		opts deploy.Options
		err  error
		want string
	}{
		{"unknown target", broker("{}"), deploy.Options{Target: "aws.ecs"}, deploy.ErrTarget, "renders digitalocean.app_platform, kubernetes"},
		{"no target", broker("{}"), deploy.Options{}, deploy.ErrTarget, "choose one of digitalocean.app_platform, kubernetes"},
		{"broker target not rendered", broker("{deploy_target: self_hosted, dsn: 'nats://x:4222'}"), deploy.Options{}, deploy.ErrTarget, `deploy_target "self_hosted"; eventbus deploy renders`},
		{"targets disagree", broker("{deploy_target: kubernetes}"), deploy.Options{Target: deploy.TargetAppPlatform}, deploy.ErrTarget, "app.yaml:2: module bus: deploy_target"},
		{"url set", broker("{dsn: 'nats://x:4222'}"), deploy.Options{Target: "kubernetes"}, deploy.ErrApp, "EVENTBUS_BUS_URI"},
		{"even replicas", broker("{replicas: 2}"), deploy.Options{Target: "kubernetes"}, deploy.ErrApp, "replicas: 2"},
		{"old version", broker("{version: '2.9.20'}"), deploy.Options{Target: "kubernetes"}, deploy.ErrApp, "needs NATS 2.10"},
		{"bad version", broker("{version: latest}"), deploy.Options{Target: "kubernetes"}, deploy.ErrApp, `version "latest"`},
		{"bad cpu", broker("{limits: {cpu: lots}}"), deploy.Options{Target: "kubernetes"}, deploy.ErrApp, "limits.cpu"},
		{"store above volume", broker("{jetstream: {max_storage_bytes: 100000000000}, limits: {storage: 1Gi}}"), deploy.Options{Target: "kubernetes"}, deploy.ErrApp, "max_storage_bytes"},
		{"postgres", broker("{provider: postgres}"), deploy.Options{Target: "kubernetes"}, deploy.ErrApp, "NATS brokers only"},
		{"too big for app platform", broker("{limits: {cpu: '16'}}"), deploy.Options{Target: deploy.TargetAppPlatform}, deploy.ErrApp, "largest instance size"},
		{"no image", broker("{}"), deploy.Options{Target: "kubernetes", Image: "-"}, deploy.ErrOptions, "image"},
		{"bad name", broker("{}"), deploy.Options{Target: "kubernetes", Name: "Shop_1"}, deploy.ErrOptions, "name"},
		{"chart on app platform", broker("{}"), deploy.Options{Target: deploy.TargetAppPlatform, NATSChart: true}, deploy.ErrOptions, "Helm chart"},
		{"short token key", broker("{}"), deploy.Options{Target: "kubernetes", TokenKey: []byte("short")}, deploy.ErrOptions, "token key"},
		{"image app platform cannot pull", broker("{}"), deploy.Options{Target: deploy.TargetAppPlatform, Image: "quay.io/acme/shop:1"}, deploy.ErrOptions, "App Platform pulls"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			if opts.Name == "" {
				opts.Name = "shop"
			}
			switch opts.Image {
			case "":
				opts.Image = "ghcr.io/acme/shop:1"
			case "-":
				opts.Image = ""
			}
			_, err := deploy.Render(tc.app, opts)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render = %v, want %v naming %q", err, tc.err, tc.want)
			}
		})
	}
}

func TestParseAppErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, yaml, want string }{
		{"not yaml", "modules: [", "invalid YAML"},
		{"no modules", "pipelines: {}", "no modules list"},
		{"no broker", "modules:\n  - name: s\n    type: eventbus.stream\n", "no eventbus.broker module"},
		{"unknown field", "modules:\n  - name: bus\n    type: eventbus.broker\n    config: {replicaz: 3}\n", "app.yaml:4: module bus"},
		{"nameless broker", "modules:\n  - type: infra.eventbus\n", "app.yaml:2: module of type infra.eventbus has no name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := deploy.ParseApp("app.yaml", []byte(tc.yaml))
			if !errors.Is(err, deploy.ErrApp) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseApp = %v, want ErrApp naming %q", err, tc.want)
			}
		})
	}
}

// Environment references in broker fields take their defaults, as they do
// where the app runs without those variables.
func TestParseAppEnvDefaults(t *testing.T) {
	t.Parallel()
	app, err := deploy.ParseApp("app.yaml", []byte("modules:\n  - name: bus\n    type: eventbus.broker\n    config: {replicas: '${NATS_REPLICAS:-5}', version: '${NATS_VERSION}2.10'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := app.Brokers[0].Config.GetReplicas(); got != 5 {
		t.Errorf("replicas %d, want the default 5", got)
	}
	if got := app.Brokers[0].Config.GetVersion(); got != "2.10" {
		t.Errorf("version %q, want 2.10", got)
	}
}
