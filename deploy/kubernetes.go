package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Paths and ports of the app's containers.
const (
	appConfigDir  = "/etc/eventbus"
	appConfigFile = "app.yaml"
	metricsPort   = 9090
)

// kubernetes renders the NATS cluster of every broker (or the Helm chart's
// values for it) and the app's Deployment, ConfigMap and Secret.
func (r renderer) kubernetes() ([]File, error) {
	var files []File
	add := func(kind, name string, obj any) error {
		data, err := manifest(obj)
		if err != nil {
			return fmt.Errorf("render %s %s: %w", kind, name, err)
		}
		files = append(files, File{Name: strings.ToLower(kind) + "-" + name + ".yaml", Data: data, Manifest: true, Secret: kind == "Secret"})
		return nil
	}
	for _, p := range r.plans {
		if r.opts.NATSChart {
			data, err := yaml.Marshal(r.chartValues(p))
			if err != nil {
				return nil, fmt.Errorf("render chart values of %s: %w", p.base, err)
			}
			head := fmt.Sprintf("# Values for the NATS Helm chart (https://nats-io.github.io/k8s/helm/charts/, chart nats 1.x):\n"+
				"#   helm install %s nats/nats -f values-%s.yaml\n", p.base, p.base)
			files = append(files, File{Name: "values-" + p.base + ".yaml", Data: append([]byte(head), data...)})
			continue
		}
		for _, o := range r.natsObjects(p) {
			if err := add(o.kind, o.name, o.obj); err != nil {
				return nil, err
			}
		}
	}
	for _, o := range r.appObjects() {
		if err := add(o.kind, o.name, o.obj); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// object is one Kubernetes object to render.
type object struct {
	kind, name string
	obj        any
}

// manifest renders a Kubernetes object as YAML without the fields the API
// server fills in (status, a null creationTimestamp).
func manifest(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	return yaml.Marshal(prune(m))
}

// prune removes null values and empty status blocks at every depth. Other
// empty maps stay: some mean something (emptyDir: {}).
func prune(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if m, ok := e.(map[string]any); e == nil || k == "status" && ok && len(m) == 0 {
				delete(t, k)
				continue
			}
			t[k] = prune(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = prune(e)
		}
		return t
	}
	return v
}

// meta returns object metadata for name in the chosen namespace.
func (r renderer) meta(name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: r.opts.Namespace, Labels: labels}
}

// natsLabels select the servers of p.
func (r renderer) natsLabels(p natsPlan) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "nats",
		"app.kubernetes.io/instance": p.base,
		"app.kubernetes.io/part-of":  r.opts.Name,
	}
}

// headless is the name of the Service that gives each server of p a DNS
// name of its own, for routes and clients.
func headless(p natsPlan) string { return p.base + "-headless" }

// podHost is the DNS name of server i of p inside the namespace.
func podHost(p natsPlan, i int) string {
	return fmt.Sprintf("%s-%d.%s", p.base, i, headless(p))
}

// clientURLs lists the client URLs of every server of p, for the app.
func clientURLs(p natsPlan) string {
	urls := make([]string, p.replicas)
	for i := range urls {
		urls[i] = fmt.Sprintf("nats://%s:%d", podHost(p, i), clientPort)
	}
	return strings.Join(urls, ",")
}

// kubernetesNATSConfig is the configuration of p's servers on Kubernetes.
func kubernetesNATSConfig(p natsPlan) string {
	routes := make([]string, p.replicas)
	for i := range routes {
		routes[i] = fmt.Sprintf("nats-route://%s:%d", podHost(p, i), clusterPort)
	}
	return natsConfig(p, routes, true)
}

// checksum is a short digest of what a pod template depends on, set as an
// annotation so that changing it rolls the pods.
func checksum(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// goMemLimit is the Go runtime's soft memory limit for a container limited
// to memory: nine tenths of it, leaving room for what the runtime does not
// count, so the server collects garbage before the kernel kills it.
func goMemLimit(memory resource.Quantity) string {
	return strconv.FormatInt(memory.Value()/10*9, 10)
}

// natsObjects are the Kubernetes objects of p's NATS cluster.
func (r renderer) natsObjects(p natsPlan) []object {
	labels := r.natsLabels(p)
	conf := kubernetesNATSConfig(p)
	ports := []corev1.ServicePort{
		{Name: "client", Port: clientPort, TargetPort: intstr.FromString("client")},
		{Name: "cluster", Port: clusterPort, TargetPort: intstr.FromString("cluster")},
		{Name: "monitor", Port: monitorPort, TargetPort: intstr.FromString("monitor")},
	}
	configMap := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: r.meta(p.base+"-config", labels),
		Data:       map[string]string{"nats.conf": conf},
	}
	headlessSvc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: r.meta(headless(p), labels),
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  labels,
			Ports:     ports,
			// Servers must find each other before they are ready: a
			// server is ready only once it has joined the cluster.
			PublishNotReadyAddresses: true,
		},
	}
	clientSvc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: r.meta(p.base, labels),
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{ports[0], ports[2]},
		},
	}
	resources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: p.cpu, corev1.ResourceMemory: p.memory},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: p.cpu, corev1.ResourceMemory: p.memory},
	}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString("monitor"),
			}},
			PeriodSeconds: period, TimeoutSeconds: 5, FailureThreshold: failures,
		}
	}
	replicas := int32(p.replicas)
	sts := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: r.meta(p.base, labels),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: headless(p),
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			// All servers start together: each waits for the others to
			// form the cluster before it reports ready.
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      labels,
					Annotations: map[string]string{"eventbus.dev/config-checksum": checksum(conf)},
				},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr(int64(60)),
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{
						// One server per node: a node that fails takes one
						// replica of each stream with it, never a majority.
						{MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.DoNotSchedule,
							LabelSelector: &metav1.LabelSelector{MatchLabels: labels}},
						// Across zones where the cluster has them.
						{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
							LabelSelector: &metav1.LabelSelector{MatchLabels: labels}},
					},
					Containers: []corev1.Container{{
						Name:  "nats",
						Image: p.image(),
						Args:  []string{"--config", "/etc/nats/nats.conf"},
						Ports: []corev1.ContainerPort{
							{Name: "client", ContainerPort: clientPort},
							{Name: "cluster", ContainerPort: clusterPort},
							{Name: "monitor", ContainerPort: monitorPort},
						},
						Env: []corev1.EnvVar{
							{Name: serverNameEnv, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "GOMEMLIMIT", Value: goMemLimit(p.memory)},
						},
						Resources: resources,
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: "/etc/nats"},
							{Name: "data", MountPath: "/data"},
							{Name: "pid", MountPath: "/var/run/nats"},
						},
						// A restarted server recovers its streams before
						// /healthz answers; large stores take a while.
						StartupProbe:   probe("/healthz", 10, 90),
						LivenessProbe:  probe("/healthz?js-enabled-only=true", 30, 3),
						ReadinessProbe: probe("/healthz?js-server-only=true", 10, 3),
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
							Command: []string{"nats-server", "--signal", "ldm=" + pidFile},
						}}},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: configMap.Name},
						}}},
						{Name: "pid", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
				ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: labels},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: p.storage}},
				},
			}},
		},
	}
	maxUnavailable := intstr.FromInt32(1)
	pdb := &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: r.meta(p.base, labels),
		Spec: policyv1.PodDisruptionBudgetSpec{
			// Drains and upgrades take one server at a time: the others
			// keep a majority of every stream's replicas.
			MaxUnavailable: &maxUnavailable,
			Selector:       &metav1.LabelSelector{MatchLabels: labels},
		},
	}
	return []object{
		{"ConfigMap", configMap.Name, configMap},
		{"Service", headlessSvc.Name, headlessSvc},
		{"Service", clientSvc.Name, clientSvc},
		{"StatefulSet", sts.Name, sts},
		{"PodDisruptionBudget", pdb.Name, pdb},
	}
}

// appObjects are the app's Secret, ConfigMap and Deployment.
func (r renderer) appObjects() []object {
	name := r.opts.Name
	labels := map[string]string{
		"app.kubernetes.io/name":    "eventbus",
		"app.kubernetes.io/part-of": name,
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: r.meta(name+"-secrets", labels),
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{TokenKeyEnv: r.tokenKey},
	}
	configMap := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: r.meta(name+"-config", labels),
		Data:       map[string]string{appConfigFile: string(r.app.Data)},
	}
	var env []corev1.EnvVar
	for _, p := range r.plans {
		env = append(env, corev1.EnvVar{Name: urlEnvVar(p.module), Value: clientURLs(p)})
	}
	replicas := int32(r.opts.AppReplicas)
	deployment := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: r.meta(name, labels),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      labels,
					Annotations: map[string]string{"eventbus.dev/config-checksum": checksum(string(r.app.Data), r.tokenKey)},
				},
				Spec: corev1.PodSpec{
					// Running pipelines finish before the app exits.
					TerminationGracePeriodSeconds: ptr(int64(60)),
					Containers: []corev1.Container{{
						Name:  "eventbus",
						Image: r.opts.Image,
						Args:  []string{"run", "--metrics-addr", fmt.Sprintf("0.0.0.0:%d", metricsPort), appConfigDir + "/" + appConfigFile},
						Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: metricsPort}},
						Env:   env,
						EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: secret.Name},
						}}},
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse("100m"),
							corev1.ResourceMemory: resource.MustParse("128Mi"),
						}},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: appConfigDir, ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: configMap.Name},
					}}}},
				},
			},
		},
	}
	return []object{
		{"Secret", secret.Name, secret},
		{"ConfigMap", configMap.Name, configMap},
		{"Deployment", deployment.Name, deployment},
	}
}

func ptr[T any](v T) *T { return &v }
