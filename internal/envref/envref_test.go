package envref

import (
	"slices"
	"testing"
)

// engine-pipelines.md §1.7: the engine's rules, and the plugin's with
// defaults.
func TestExpand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SET": "value", "EMPTY": "", "DB_HOST": "db", "PORT": "4222"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, engine, plugin string
		failed             []string // references the engine leaves
	}{
		{"${SET}", "value", "value", nil},
		{"${env:SET}", "value", "value", nil},
		{"${set}", "value", "value", nil},
		{"${db.host}", "db", "db", nil},
		{"${EMPTY}", "", "", nil},
		{"a ${SET} ${PORT} b", "a value 4222 b", "a value 4222 b", nil},
		{"${UNSET}", "${UNSET}", "${UNSET}", []string{"${UNSET}"}},
		{"${SET}-${UNSET}", "${SET}-${UNSET}", "${SET}-${UNSET}", []string{"${UNSET}"}},
		{"${PORT:-1}", "${PORT:-1}", "4222", []string{"${PORT:-1}"}},
		{"${UNSET:-d}", "${UNSET:-d}", "d", []string{"${UNSET:-d}"}},
		{"${EMPTY:-d}", "${EMPTY:-d}", "d", []string{"${EMPTY:-d}"}},
		{"${env:UNSET:-./x}", "${env:UNSET:-./x}", "./x", []string{"${env:UNSET:-./x}"}},
		{"${UNSET:-}", "${UNSET:-}", "", []string{"${UNSET:-}"}},
		{"${SET}:${UNSET:-9}", "${SET}:${UNSET:-9}", "value:9", []string{"${UNSET:-9}"}},
		{"${vault:x}", "${vault:x}", "${vault:x}", []string{"${vault:x}"}},
		{"${ SET }", "${ SET }", "${ SET }", []string{"${ SET }"}},
		{"$SET", "$SET", "$SET", nil},
		{"${SET", "${SET", "${SET", nil},
	}
	for _, tt := range tests {
		got, failed := Expand(tt.in, lookup)
		var texts []string
		for _, f := range failed {
			texts = append(texts, f.Text)
		}
		if got != tt.engine || !slices.Equal(texts, tt.failed) {
			t.Errorf("Expand(%q) = %q, %q; want %q, %q", tt.in, got, texts, tt.engine, tt.failed)
		}
		if got, _ := ExpandDefaults(tt.in, lookup); got != tt.plugin {
			t.Errorf("ExpandDefaults(%q) = %q, want %q", tt.in, got, tt.plugin)
		}
	}
}
