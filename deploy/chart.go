package deploy

// chartValues are values for the official NATS Helm chart (nats 1.x) that
// run p's cluster as natsObjects does: its names (fullnameOverride keeps
// the pods at <base>-N behind <base>-headless, where the app looks), its
// servers, volume and limits, the same sync interval and topology spread.
// The chart adds the PodDisruptionBudget, probes and lame-duck shutdown.
func (r renderer) chartValues(p natsPlan) map[string]any {
	jetstream := map[string]any{
		"enabled": true,
		"fileStore": map[string]any{
			"enabled": true,
			"dir":     "/data",
			"pvc":     map[string]any{"enabled": true, "size": p.storage.String()},
		},
		"merge": map[string]any{"sync_interval": SyncInterval},
	}
	merge := jetstream["merge"].(map[string]any)
	if p.maxFileStore > 0 {
		merge["max_file_store"] = p.maxFileStore
	}
	if p.maxMemoryStore > 0 {
		merge["max_memory_store"] = p.maxMemoryStore
	}
	values := map[string]any{
		"fullnameOverride": p.base,
		"config": map[string]any{
			"cluster":   map[string]any{"enabled": p.replicas > 1, "replicas": p.replicas},
			"jetstream": jetstream,
			"monitor":   map[string]any{"enabled": true, "port": monitorPort},
		},
		"container": map[string]any{
			"image": map[string]any{"tag": p.version + "-alpine"},
			"env":   map[string]any{"GOMEMLIMIT": goMemLimit(p.memory)},
			"merge": map[string]any{"resources": map[string]any{
				"requests": map[string]any{"cpu": p.cpu.String(), "memory": p.memory.String()},
				"limits":   map[string]any{"cpu": p.cpu.String(), "memory": p.memory.String()},
			}},
		},
		"podTemplate": map[string]any{
			"topologySpreadConstraints": map[string]any{
				"kubernetes.io/hostname":      map[string]any{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"},
				"topology.kubernetes.io/zone": map[string]any{"maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"},
			},
		},
		"podDisruptionBudget": map[string]any{"enabled": true},
		"natsBox":             map[string]any{"enabled": false},
	}
	if r.opts.Namespace != "" {
		values["namespaceOverride"] = r.opts.Namespace
	}
	return values
}
