package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of one Suite run.
type Report struct {
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"-"`
	Machine  Machine       `json:"machine"`
	Settings Settings      `json:"settings"`
	Results  []Result      `json:"results"`
	Targets  []Target      `json:"targets"`
	// Notes say what was left out of the run and why.
	Notes []string `json:"notes,omitempty"`
}

// Settings are the Config values a run used.
type Settings struct {
	Duration           time.Duration `json:"-"`
	Warmup             time.Duration `json:"-"`
	PayloadSize        int           `json:"payload_bytes"`
	BatchSize          int           `json:"batch_size"`
	PublishConcurrency int           `json:"publish_concurrency"`
	TriggerMessages    int           `json:"trigger_messages"`
	TriggerConcurrency []int         `json:"trigger_concurrency"`
	LatencyRate        int           `json:"latency_rate"`
	LatencyDuration    time.Duration `json:"-"`
	LatencyConcurrency int           `json:"latency_concurrency"`
}

// Result is one measured figure.
type Result struct {
	// ID names the scenario in JSON and in Ceiling.
	ID string
	// Name describes it in the table.
	Name string
	// Messages moved in Elapsed.
	Messages int64
	Elapsed  time.Duration
	// Rate is messages per second.
	Rate float64
	// Ceiling is the ID of the figure this one is compared with, Ratio
	// Rate divided by the ceiling's Rate; empty and 0 when none.
	Ceiling string
	Ratio   float64
	// Latency is per call for publish scenarios, per message from send to
	// pipeline start for the latency scenario; zero when not measured.
	Latency Percentiles
	// CPUPerMessage is the CPU time the host and the plugin (and the
	// broker, which runs in one of them) spent per message.
	CPUPerMessage time.Duration
	// PluginRSS and PluginPeakRSS are the plugin process's VmRSS after the
	// scenario and its VmHWM so far, in bytes; 0 when no plugin process
	// took part.
	PluginRSS     int64
	PluginPeakRSS int64
}

// Target is a figure's goal and whether the run met it.
type Target struct {
	Name   string  `json:"name"`
	Result string  `json:"result"`
	Want   string  `json:"want"`
	Got    string  `json:"got"`
	Value  float64 `json:"value"`
	Met    bool    `json:"met"`
}

// Result returns the result with the given ID.
func (r *Report) Result(id string) (Result, bool) {
	for _, res := range r.Results {
		if res.ID == id {
			return res, true
		}
	}
	return Result{}, false
}

// MarshalJSON writes durations as milliseconds, which read better than
// nanoseconds.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		plain
		ElapsedSeconds float64 `json:"elapsed_seconds"`
		Settings       any     `json:"settings"`
	}{
		plain:          plain(r),
		ElapsedSeconds: r.Elapsed.Seconds(),
		Settings: struct {
			Settings
			DurationSeconds        float64 `json:"duration_seconds"`
			WarmupSeconds          float64 `json:"warmup_seconds"`
			LatencyDurationSeconds float64 `json:"latency_duration_seconds"`
		}{r.Settings, r.Settings.Duration.Seconds(), r.Settings.Warmup.Seconds(), r.Settings.LatencyDuration.Seconds()},
	})
}

// MarshalJSON writes a result with rates per second, durations in
// milliseconds and sizes in bytes.
func (r Result) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	out := map[string]any{
		"id":              r.ID,
		"name":            r.Name,
		"messages":        r.Messages,
		"elapsed_seconds": r.Elapsed.Seconds(),
		"msg_per_sec":     r.Rate,
	}
	if r.Ceiling != "" {
		out["ceiling"] = r.Ceiling
		out["ratio"] = r.Ratio
	}
	if r.CPUPerMessage > 0 {
		out["cpu_us_per_msg"] = float64(r.CPUPerMessage) / float64(time.Microsecond)
	}
	if r.Latency.Count > 0 {
		out["latency"] = map[string]any{
			"count": r.Latency.Count, "p50_ms": ms(r.Latency.P50), "p99_ms": ms(r.Latency.P99),
			"p999_ms": ms(r.Latency.P999), "max_ms": ms(r.Latency.Max),
		}
	}
	if r.PluginRSS > 0 {
		out["plugin_rss_bytes"] = r.PluginRSS
		out["plugin_peak_rss_bytes"] = r.PluginPeakRSS
	}
	return json.Marshal(out)
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// fmtGOGC writes a collector percent as GOGC is written.
func fmtGOGC(p int) string {
	if p < 0 {
		return "off"
	}
	return strconv.Itoa(p)
}

// WriteTable writes the results and targets as aligned text tables.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "%d CPUs (%s), %s memory, %s %s/%s, GOMAXPROCS %d, host GOGC %s; load average %s at start, %s at end; %.0fs\n\n",
		m.CPUs, m.CPUModel, m.Memory, m.GoVersion, m.OS, m.Arch, m.GOMAXPROCS, fmtGOGC(m.HostGOGC), m.LoadAverage, m.LoadAverageEnd, r.Elapsed.Seconds())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmsg/s\tceiling\tratio\tcpu/msg\tp50\tp99\tp99.9\tplugin RSS\t")
	for _, res := range r.Results {
		ceiling, ratio := "-", "-"
		if res.Ceiling != "" {
			ceiling = res.Ceiling
			ratio = fmt.Sprintf("%.2f×", res.Ratio)
		}
		p50, p99, p999 := "-", "-", "-"
		if res.Latency.Count > 0 {
			p50, p99, p999 = fmtDuration(res.Latency.P50), fmtDuration(res.Latency.P99), fmtDuration(res.Latency.P999)
		}
		rss := "-"
		if res.PluginRSS > 0 {
			rss = fmtBytes(res.PluginRSS)
		}
		cpu := "-"
		if res.CPUPerMessage > 0 {
			cpu = fmtMicros(res.CPUPerMessage)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", res.ID, fmtRate(res.Rate), ceiling, ratio, cpu, p50, p99, p999, rss)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\twant\tgot\tmet")
	for _, t := range r.Targets {
		met := "MISSED"
		if t.Met {
			met = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Want, t.Got, met)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", n)
	}
	return nil
}

// fmtRate writes a rate with thousands separators.
func fmtRate(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtDuration writes d in milliseconds with three significant decimals.
func fmtDuration(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}

// fmtMicros writes d in microseconds with one decimal.
func fmtMicros(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 1, 64) + "µs"
}

// fmtBytes writes n in MiB.
func fmtBytes(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
