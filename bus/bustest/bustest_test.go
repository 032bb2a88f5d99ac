package bustest

import (
	"strings"
	"testing"
)

func TestStreamName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		test string
		n    uint64
		want string
	}{
		{"TestConformance/file/RoundTrip", 1, "TestConformance_file_RoundTrip_1"},
		{"TestX/Nak redelivers.by token>*", 12, "TestX_Nak_redelivers_by_token___12"},
		{"Test/ünïcode", 3, "Test__n_code_3"},
		{"", 7, "_7"},
	}
	for _, c := range cases {
		got := streamName(c.test, c.n)
		if got != c.want {
			t.Errorf("streamName(%q, %d) = %q, want %q", c.test, c.n, got, c.want)
		}
		if strings.ContainsAny(got, ". *>/\\\t") {
			t.Errorf("streamName(%q, %d) = %q holds a character not allowed in a stream name or subject token", c.test, c.n, got)
		}
	}
}
