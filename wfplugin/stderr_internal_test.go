package wfplugin

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestPluginRecordsKeepTheirShape writes records of a plugin's slog logger,
// in text and in JSON, through the stderr forwarder into a host logger of
// either format: each must arrive as one host record with the plugin's
// level, message and attributes, not as a host record quoting the line.
func TestPluginRecordsKeepTheirShape(t *testing.T) {
	t.Parallel()
	write := func(h func(*bytes.Buffer) slog.Handler) string {
		var b bytes.Buffer
		slog.New(h(&b)).Warn("pipeline failed; message will be redelivered",
			"delivery", 2, "delay", (1500 * time.Millisecond).String(), "error", `step "x" failed: bad = "y"`)
		return strings.TrimRight(b.String(), "\n")
	}
	pluginLines := map[string]string{
		"text": write(func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }),
		"json": write(func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }),
	}
	for pluginFormat, line := range pluginLines {
		t.Run("plugin "+pluginFormat+", host json", func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			newStderrTail(slog.New(slog.NewJSONHandler(&out, nil)).With("plugin", "p"), 4).line("stderr", line)
			var rec map[string]any
			if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
				t.Fatalf("host output %q: %v", out.String(), err)
			}
			if rec["level"] != "WARN" || rec["msg"] != "pipeline failed; message will be redelivered" || rec["plugin"] != "p" ||
				rec["delay"] != "1.5s" || rec["error"] != `step "x" failed: bad = "y"` || rec["stream"] != nil {
				t.Fatalf("host record = %v", rec)
			}
			if d := rec["delivery"]; d != "2" && d != float64(2) {
				t.Fatalf("delivery = %#v", d)
			}
		})
		t.Run("plugin "+pluginFormat+", host text", func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			newStderrTail(slog.New(slog.NewTextHandler(&out, nil)).With("plugin", "p"), 4).line("stderr", line)
			got := strings.TrimRight(out.String(), "\n")
			if strings.Count(got, "level=") != 1 || strings.Count(got, "msg=") != 1 || strings.Contains(got, `\"pipeline`) ||
				!strings.Contains(got, `level=WARN msg="pipeline failed; message will be redelivered" plugin=p`) ||
				!strings.Contains(got, "delay=1.5s") || !strings.Contains(got, `error="step \"x\" failed: bad = \"y\""`) {
				t.Fatalf("host line = %s", got)
			}
		})
	}
}

func TestParseTextRecord(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line  string
		ok    bool
		level slog.Level
		msg   string
		attrs string
	}{
		{line: `time=2026-01-02T03:04:05.000Z level=INFO msg=subscribed a=1 b="x y"`, ok: true, level: slog.LevelInfo, msg: "subscribed", attrs: "a=1 b=x y"},
		{line: `level=ERROR msg="a \"quoted\" message" err=""`, ok: true, level: slog.LevelError, msg: `a "quoted" message`, attrs: "err="},
		{line: `time=2026-01-02T03:04:05.000Z level=WARN+2 msg=m`, ok: true, level: slog.LevelWarn + 2, msg: "m"},
		{line: `level=INFO`, ok: false},
		{line: `msg=only a message`, ok: false},
		{line: `time=x level=LOUD msg=m`, ok: false},
		{line: `time=x level=INFO msg="unterminated`, ok: false},
		{line: `time=x level=INFO msg=m =v`, ok: false},
		{line: `panic: runtime error`, ok: false},
		{line: `2026-01-02T03:04:05.000Z [WARN]  go-plugin: something`, ok: false},
	}
	for _, c := range cases {
		msg, level, attrs, ok := parseTextRecord(c.line)
		var as []string
		for _, a := range attrs {
			as = append(as, a.Key+"="+a.Value.String())
		}
		if ok != c.ok || (ok && (msg != c.msg || level != c.level || strings.Join(as, " ") != c.attrs)) {
			t.Errorf("parseTextRecord(%q) = %q %v %v %v, want %q %v %q %v", c.line, msg, level, as, ok, c.msg, c.level, c.attrs, c.ok)
		}
	}
}
