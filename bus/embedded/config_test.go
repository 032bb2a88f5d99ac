package embedded

import (
	"errors"
	"testing"

	"github.com/wfeventbus/eventbus/bus"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	got, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.StoreDir != DefaultStoreDir || got.Host != DefaultHost || got.Port != DefaultPort || got.MaxPayload != DefaultMaxPayload || got.Logger == nil {
		t.Fatalf("defaults not applied: %+v", got)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "localhost", cfg: Config{Host: "localhost"}},
		{name: "LOCALHOST", cfg: Config{Host: "LOCALHOST"}},
		{name: "127.0.0.1", cfg: Config{Host: "127.0.0.1"}},
		{name: "127.1.2.3", cfg: Config{Host: "127.1.2.3"}},
		{name: "ipv6 loopback", cfg: Config{Host: "::1"}},
		{name: "all interfaces", cfg: Config{Host: "0.0.0.0"}, wantErr: true},
		{name: "ipv6 all interfaces", cfg: Config{Host: "::"}, wantErr: true},
		{name: "private address", cfg: Config{Host: "10.0.0.1"}, wantErr: true},
		{name: "host name", cfg: Config{Host: "example.com"}, wantErr: true},
		{name: "random port", cfg: Config{Port: RandomPort}},
		{name: "highest port", cfg: Config{Port: 65535}},
		{name: "negative port", cfg: Config{Port: -2}, wantErr: true},
		{name: "port too large", cfg: Config{Port: 65536}, wantErr: true},
		{name: "max payload 64MiB", cfg: Config{MaxPayload: 64 << 20}},
		{name: "negative max payload", cfg: Config{MaxPayload: -1}, wantErr: true},
		{name: "max payload above 64MiB", cfg: Config{MaxPayload: 64<<20 + 1}, wantErr: true},
		{name: "server name with space", cfg: Config{ServerName: "a b"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.cfg.withDefaults()
			if tc.wantErr != (err != nil) {
				t.Fatalf("withDefaults() error = %v, want error: %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, bus.ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap bus.ErrInvalidConfig", err)
			}
		})
	}
}
