package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNewLogger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, format, level string
		wantErr             string // substring naming the bad flag; "" for success
		json                bool
		debugShown          bool
		infoShown           bool
	}{
		{name: "text info", format: "text", level: "info", infoShown: true},
		{name: "json debug", format: "json", level: "debug", json: true, debugShown: true, infoShown: true},
		{name: "upper case", format: "JSON", level: "WARN", json: true},
		{name: "error level", format: "text", level: "error"},
		{name: "bad format", format: "xml", level: "info", wantErr: "--log-format"},
		{name: "bad level", format: "text", level: "loud", wantErr: "--log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			logger, err := newLogger(&buf, tt.format, tt.level)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newLogger(%q, %q) error = %v, want one naming %s", tt.format, tt.level, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newLogger(%q, %q): %v", tt.format, tt.level, err)
			}
			logger.Debug("debug line")
			logger.Info("info line")
			out := buf.String()
			if got := strings.Contains(out, "debug line"); got != tt.debugShown {
				t.Errorf("debug logged = %v, want %v; output %q", got, tt.debugShown, out)
			}
			if got := strings.Contains(out, "info line"); got != tt.infoShown {
				t.Errorf("info logged = %v, want %v; output %q", got, tt.infoShown, out)
			}
			if tt.json {
				buf.Reset()
				logger.Warn("with a duration", "timeout", 30*time.Second)
				var rec map[string]any
				if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["timeout"] != "30s" {
					t.Errorf("duration written as %#v (%v), want \"30s\"", rec["timeout"], err)
				}
			}
			if tt.json && out != "" {
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					if !json.Valid([]byte(line)) {
						t.Errorf("line %q is not JSON", line)
					}
				}
			}
		})
	}
}

// Wrong command lines fail with exit code 2 before connecting anywhere, with
// a message naming what is wrong and no usage dump.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "pub without subject", args: []string{"pub"}, want: "accepts between 1 and 2 arg(s)"},
		{name: "pub zero timeout", args: []string{"pub", "a.b", "--timeout", "0s"}, want: "--timeout"},
		{name: "pub count zero", args: []string{"pub", "a.b", "--count", "0"}, want: "--count"},
		{name: "pub header without value", args: []string{"pub", "a.b", "--header", "novalue"}, want: "--header"},
		{name: "pub header with empty key", args: []string{"pub", "a.b", "-H", "=v"}, want: "--header"},
		{name: "password without user", args: []string{"pub", "a.b", "--password", "p"}, want: "--password needs --user"},
		{name: "two credentials", args: []string{"streams", "--user", "u", "--token", "t"}, want: "alternatives"},
		{name: "streams with argument", args: []string{"streams", "extra"}, want: "unknown command"},
		{name: "sub deliver without stream", args: []string{"sub", "a.b", "--deliver", "new"}, want: "--deliver needs --stream"},
		{name: "sub bad deliver", args: []string{"sub", "a.b", "--stream", "S", "--deliver", "first"}, want: "--deliver must be"},
		{name: "sub negative count", args: []string{"sub", "a.b", "--count", "-1"}, want: "--count"},
		{name: "server port out of range", args: []string{"server", "--port", "70000"}, want: "--port"},
		{name: "server port zero", args: []string{"server", "--port", "0"}, want: "--port"},
		{name: "server host not loopback", args: []string{"server", "--memory", "--host", "0.0.0.0"}, want: "loopback"},
		{name: "unknown flag", args: []string{"pub", "a.b", "--bogus"}, want: "unknown flag: --bogus"},
		{name: "bad log format", args: []string{"--log-format", "xml", "version"}, want: "--log-format"},
		{name: "bad log level", args: []string{"--log-level", "loud", "version"}, want: "--log-level"},
		{name: "unknown command", args: []string{"bogus"}, want: `unknown command "bogus" for "eventbus"`},
		{name: "misspelt command", args: []string{"stream"}, want: "did you mean streams?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, nil, "", tt.args...)
			if res.code != 2 || !errors.Is(res.err, errUsage) {
				t.Fatalf("%v: exit %d, err %v; want exit 2 and errUsage", tt.args, res.code, res.err)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr %q does not mention %q", res.stderr, tt.want)
			}
			if strings.Contains(res.stderr, "Usage:") || res.stdout != "" {
				t.Errorf("usage dumped: stdout %q, stderr %q", res.stdout, res.stderr)
			}
		})
	}
}

// semver matches a semantic version (semver.org 2.0.0), without a "v".
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

func TestVersion(t *testing.T) {
	t.Parallel()
	if !semver.MatchString(version) {
		t.Fatalf("version %q is not a semantic version", version)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		d, stdout, stderr := testDeps(nil, "")
		if code := execute(t.Context(), args, d); code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
		if got, want := stdout.String(), "eventbus "+version+"\n"; got != want {
			t.Errorf("%v printed %q, want %q", args, got, want)
		}
	}

	// The command prints the version it is given, which is how a value
	// stamped at build time reaches it.
	d, stdout, _ := testDeps(nil, "")
	d.version = "2.3.4-rc.1"
	if code := execute(t.Context(), []string{"version"}, d); code != 0 || stdout.String() != "eventbus 2.3.4-rc.1\n" {
		t.Errorf("version with 2.3.4-rc.1: exit %d, printed %q", code, stdout.String())
	}
}
