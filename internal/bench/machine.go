package bench

import (
	"bufio"
	"os"
	"runtime"
	"strings"

	"github.com/wfeventbus/eventbus/internal/hostgc"
)

// Machine describes where a run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	Memory     string `json:"memory"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	// HostGOGC is the collector's percent of the host process (-1: off);
	// the plugin process has its own, Go's default unless GOGC is set.
	HostGOGC int `json:"host_gogc"`
	// LoadAverage is the 1-minute load average when the run started and
	// when it ended: other work on the machine skews every figure.
	LoadAverage    string `json:"load_average_start"`
	LoadAverageEnd string `json:"load_average_end"`
}

// thisMachine reads the machine's description; fields /proc cannot give
// stay empty.
func thisMachine() Machine {
	m := Machine{
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		HostGOGC:   hostgc.Current(),
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.Memory = procField("/proc/meminfo", "MemTotal")
	m.LoadAverage = loadAverage()
	return m
}

// loadAverage is the 1-minute load average, or "" where /proc has none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// procField returns the value of the first "key: value" line of file
// whose key is key.
func procField(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
