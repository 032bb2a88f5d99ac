package deploy

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/digitalocean/godo"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// App Platform has no ConfigMaps: a component's configuration travels in
// an environment variable, base64-encoded so that App Platform's ${...}
// variable bindings leave it alone, and its start command writes it to a
// file. That command needs a shell, which the nats Alpine image has and the
// app's image must have.
const (
	appYAMLEnv    = "EVENTBUS_APP_YAML_B64"
	natsConfigEnv = "NATS_CONFIG_B64"
	appRunCommand = `sh -c 'printf "%s" "$` + appYAMLEnv + `" | base64 -d > /tmp/app.yaml && exec eventbus run /tmp/app.yaml'`
	natsRunCmd    = `sh -c 'printf "%s" "$` + natsConfigEnv + `" | base64 -d > /tmp/nats.conf && exec nats-server --config /tmp/nats.conf'`
	appWorkerSize = "apps-s-1vcpu-1gb"
)

// instanceSizes are App Platform instance sizes, smallest first: the NATS
// servers run on the smallest one that has limits.cpu and limits.memory.
var instanceSizes = []struct {
	slug   string
	cpu    string
	memory string
}{
	{"apps-s-1vcpu-0.5gb", "1", "512Mi"},
	{"apps-s-1vcpu-1gb", "1", "1Gi"},
	{"apps-s-1vcpu-2gb", "1", "2Gi"},
	{"apps-s-2vcpu-4gb", "2", "4Gi"},
	{"apps-d-2vcpu-8gb", "2", "8Gi"},
	{"apps-d-4vcpu-16gb", "4", "16Gi"},
	{"apps-d-8vcpu-32gb", "8", "32Gi"},
}

// instanceSize returns the smallest instance size with cpu and memory.
func instanceSize(cpu, memory resource.Quantity) (string, bool) {
	for _, s := range instanceSizes {
		if cpu.Cmp(resource.MustParse(s.cpu)) <= 0 && memory.Cmp(resource.MustParse(s.memory)) <= 0 {
			return s.slug, true
		}
	}
	return "", false
}

// natsComponent is the name of App Platform service i of p, also its host
// name inside the app.
func natsComponent(p natsPlan, i int) string {
	return fmt.Sprintf("%s-nats-%d", strings.ToLower(p.module), i)
}

// appPlatform renders one App Platform app spec: a service per NATS server
// (App Platform gives the instances of one service no addresses of their
// own, so each server is a service of one instance, reached by name) and
// a worker running the app.
func (r renderer) appPlatform() ([]File, error) {
	spec := &godo.AppSpec{Name: r.opts.Name}
	env := []*godo.AppVariableDefinition{
		{Key: appYAMLEnv, Value: base64.StdEncoding.EncodeToString(r.app.Data), Scope: godo.AppVariableScope_RunTime, Type: godo.AppVariableType_General},
		{Key: TokenKeyEnv, Value: r.tokenKey, Scope: godo.AppVariableScope_RunTime, Type: godo.AppVariableType_Secret},
	}
	for _, p := range r.plans {
		size, ok := instanceSize(p.cpu, p.memory)
		if !ok {
			return nil, fmt.Errorf("%w: %s:%d: module %s: limits cpu %s and memory %s exceed App Platform's largest instance size, %s",
				ErrApp, r.app.File, p.line, p.module, p.cpu.String(), p.memory.String(), instanceSizes[len(instanceSizes)-1].slug)
		}
		routes := make([]string, p.replicas)
		urls := make([]string, p.replicas)
		for i := range routes {
			name := natsComponent(p, i)
			if errs := validation.IsDNS1123Label(name); len(errs) > 0 || len(name) > 32 {
				return nil, fmt.Errorf("%w: %s:%d: module %s: App Platform component %q must be a DNS label of at most 32 characters; shorten the module name",
					ErrApp, r.app.File, p.line, p.module, name)
			}
			routes[i] = fmt.Sprintf("nats-route://%s:%d", name, clusterPort)
			urls[i] = fmt.Sprintf("nats://%s:%d", name, clientPort)
		}
		conf := base64.StdEncoding.EncodeToString([]byte(natsConfig(p, routes, false)))
		internal := []int64{clientPort}
		if p.replicas > 1 {
			internal = append(internal, clusterPort)
		}
		for i := range p.replicas {
			name := natsComponent(p, i)
			spec.Services = append(spec.Services, &godo.AppServiceSpec{
				Name: name,
				Image: &godo.ImageSourceSpec{
					RegistryType: godo.ImageSourceSpecRegistryType_DockerHub,
					Registry:     "library",
					Repository:   "nats",
					Tag:          p.version + "-alpine",
				},
				RunCommand: natsRunCmd,
				Envs: []*godo.AppVariableDefinition{
					{Key: natsConfigEnv, Value: conf, Scope: godo.AppVariableScope_RunTime, Type: godo.AppVariableType_General},
					{Key: serverNameEnv, Value: name, Scope: godo.AppVariableScope_RunTime, Type: godo.AppVariableType_General},
					{Key: "GOMEMLIMIT", Value: goMemLimit(p.memory), Scope: godo.AppVariableScope_RunTime, Type: godo.AppVariableType_General},
				},
				InstanceSizeSlug: size,
				InstanceCount:    1,
				// The monitoring port answers the health check; no ingress
				// rule routes to it, so it stays inside the app.
				HTTPPort:      monitorPort,
				InternalPorts: internal,
				HealthCheck: &godo.AppServiceSpecHealthCheck{
					HTTPPath: "/healthz?js-server-only=true", Port: monitorPort,
					InitialDelaySeconds: 10, PeriodSeconds: 10, FailureThreshold: 9,
				},
			})
		}
		env = append(env, &godo.AppVariableDefinition{
			Key: urlEnvVar(p.module), Value: strings.Join(urls, ","), Scope: godo.AppVariableScope_RunTime, Type: godo.AppVariableType_General,
		})
	}
	img, err := appPlatformImage(r.opts.Image)
	if err != nil {
		return nil, err
	}
	spec.Workers = []*godo.AppWorkerSpec{{
		Name:             r.opts.Name,
		Image:            img,
		RunCommand:       appRunCommand,
		Envs:             env,
		InstanceSizeSlug: appWorkerSize,
		InstanceCount:    int64(r.opts.AppReplicas),
	}}
	data, err := yaml.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("render app spec: %w", err)
	}
	head := "# App Platform app spec: doctl apps create --spec app-spec.yaml\n" +
		"# App Platform gives services no persistent volumes: the NATS servers keep\n" +
		"# their streams on the container's disk, and a server that is redeployed\n" +
		"# starts empty and copies its replicas back from the others.\n"
	return []File{{Name: "app-spec.yaml", Data: append([]byte(head), data...), Secret: true}}, nil
}

// appPlatformImage turns an image reference into an App Platform image
// source: DigitalOcean's registry, GitHub's or Docker Hub, the only ones
// App Platform pulls from.
func appPlatformImage(ref string) (*godo.ImageSourceSpec, error) {
	img := &godo.ImageSourceSpec{}
	rest := ref
	if i := strings.Index(rest, "@"); i >= 0 {
		img.Digest, rest = rest[i+1:], rest[:i]
	}
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		img.Tag, rest = rest[i+1:], rest[:i]
	}
	parts := strings.Split(rest, "/")
	host := ""
	if len(parts) > 1 && strings.ContainsAny(parts[0], ".:") {
		host, parts = parts[0], parts[1:]
	}
	switch {
	case host == "registry.digitalocean.com" && len(parts) == 2:
		img.RegistryType, img.Repository = godo.ImageSourceSpecRegistryType_DOCR, parts[1]
	case host == "ghcr.io" && len(parts) == 2:
		img.RegistryType, img.Registry, img.Repository = godo.ImageSourceSpecRegistryType_Ghcr, parts[0], parts[1]
	case (host == "" || host == "docker.io") && len(parts) == 2:
		img.RegistryType, img.Registry, img.Repository = godo.ImageSourceSpecRegistryType_DockerHub, parts[0], parts[1]
	case (host == "" || host == "docker.io") && len(parts) == 1:
		img.RegistryType, img.Registry, img.Repository = godo.ImageSourceSpecRegistryType_DockerHub, "library", parts[0]
	default:
		return nil, fmt.Errorf("%w: image %q: App Platform pulls images from registry.digitalocean.com/<registry>/<repo>, ghcr.io/<owner>/<repo> or Docker Hub", ErrOptions, ref)
	}
	if img.Repository == "" {
		return nil, fmt.Errorf("%w: image %q names no repository", ErrOptions, ref)
	}
	return img, nil
}
