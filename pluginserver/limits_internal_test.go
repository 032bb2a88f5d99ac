package pluginserver

import (
	"testing"

	"github.com/wfeventbus/eventbus/wfplugin"
)

func TestMessageLimit(t *testing.T) {
	t.Parallel()
	floor := wfplugin.DefaultMaxRecvMsgSize
	for _, tt := range []struct{ payload, want int }{
		{1 << 20, floor},
		{8 << 20, floor},
		{16 << 20, 80 << 20},
		{64 << 20, 320 << 20},
	} {
		if got := MessageLimit(tt.payload); got != tt.want {
			t.Errorf("MessageLimit(%d) = %d, want %d", tt.payload, got, tt.want)
		}
	}
}

func TestMaxRecv(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		value string
		want  int
		fails bool
	}{
		{"", 0, false},
		{"1024", wfplugin.DefaultMaxRecvMsgSize, false},
		{"335544320", 335544320, false},
		{"lots", 0, true},
		{"-5", 0, true},
	} {
		got, err := maxRecv(func(k string) string {
			if k == MaxMessageEnv {
				return tt.value
			}
			return ""
		})
		if got != tt.want || (err != nil) != tt.fails {
			t.Errorf("%s=%q: %d, %v; want %d, failure %v", MaxMessageEnv, tt.value, got, err, tt.want, tt.fails)
		}
	}
}
