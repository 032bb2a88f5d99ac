package eventbus

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

func TestResolveTokenKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const (
		keyA = "key-a-0123456789-abcdefghijklmno"
		keyB = "key-b-0123456789-abcdefghijklmno"
	)
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	fileA := write("a.key", keyA+"\n")
	write("b.key", "  "+keyB+"\r\n")
	short := write("short.key", "short-secret\n")
	long := write("long.key", strings.Repeat("k", maxTokenKeySize+1))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	cases := []struct {
		name         string
		cfg          *eventbusv1.BrokerConfig
		getenv       func(string) string
		wantCurrent  string
		wantPrevious string
		wantSource   string
		wantErr      string
	}{
		{name: "nothing set", cfg: &eventbusv1.BrokerConfig{}, wantSource: "random, this process only"},
		{name: "file", cfg: &eventbusv1.BrokerConfig{TokenKeyFile: fileA}, wantCurrent: keyA, wantSource: "token_key_file"},
		{name: "file relative to the config", cfg: &eventbusv1.BrokerConfig{TokenKeyFile: "a.key"}, wantCurrent: keyA},
		{name: "file and previous file", cfg: &eventbusv1.BrokerConfig{TokenKeyFile: "b.key", TokenKeyPreviousFile: "a.key"}, wantCurrent: keyB, wantPrevious: keyA, wantSource: "token_key_file, with a previous key"},
		{name: "env", cfg: &eventbusv1.BrokerConfig{}, getenv: env(TokenKeyEnv, b64(keyA)), wantCurrent: keyA, wantSource: TokenKeyEnv},
		{name: "env with a newline", cfg: &eventbusv1.BrokerConfig{}, getenv: env(TokenKeyEnv, b64(keyA)+"\n"), wantCurrent: keyA},
		{name: "env and previous env", cfg: &eventbusv1.BrokerConfig{}, getenv: env(TokenKeyEnv, b64(keyB), PreviousTokenKeyEnv, b64(keyA)), wantCurrent: keyB, wantPrevious: keyA, wantSource: TokenKeyEnv + ", with a previous key"},
		{name: "config beats env", cfg: &eventbusv1.BrokerConfig{TokenKeyFile: "a.key"}, getenv: env(TokenKeyEnv, b64(keyB), PreviousTokenKeyEnv, b64(keyB)), wantCurrent: keyA, wantSource: "token_key_file (EVENTBUS_TOKEN_KEY is set, but the config decides)"},
		{name: "missing file", cfg: &eventbusv1.BrokerConfig{TokenKeyFile: "none.key"}, wantErr: "token_key_file: cannot read " + filepath.Join(dir, "none.key") + ": no such file"},
		{name: "short file", cfg: &eventbusv1.BrokerConfig{TokenKeyFile: short}, wantErr: "token_key_file " + short + ": 12 bytes; a token key is 16 to 4096 bytes"},
		{name: "long file", cfg: &eventbusv1.BrokerConfig{TokenKeyFile: long}, wantErr: "token_key_file " + long + ": 4097 bytes"},
		{name: "short previous file", cfg: &eventbusv1.BrokerConfig{TokenKeyFile: "a.key", TokenKeyPreviousFile: short}, wantErr: "token_key_previous_file " + short + ": 12 bytes"},
		{name: "previous file alone", cfg: &eventbusv1.BrokerConfig{TokenKeyPreviousFile: "a.key"}, wantErr: "token_key_previous_file is set without token_key_file"},
		{name: "env not base64", cfg: &eventbusv1.BrokerConfig{}, getenv: env(TokenKeyEnv, "short-secret!not-base64"), wantErr: TokenKeyEnv + ": not base64"},
		{name: "env short", cfg: &eventbusv1.BrokerConfig{}, getenv: env(TokenKeyEnv, b64("short-secret")), wantErr: TokenKeyEnv + ", decoded: 12 bytes"},
		{name: "previous env not base64", cfg: &eventbusv1.BrokerConfig{}, getenv: env(TokenKeyEnv, b64(keyA), PreviousTokenKeyEnv, "short-secret!"), wantErr: PreviousTokenKeyEnv + ": not base64"},
		{name: "previous env alone", cfg: &eventbusv1.BrokerConfig{}, getenv: env(PreviousTokenKeyEnv, b64(keyA)), wantErr: PreviousTokenKeyEnv + " is set without " + TokenKeyEnv},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k, err := resolveTokenKeys(c.cfg, dir, c.getenv)
			if c.wantErr != "" {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want ErrConfig saying %q", err, c.wantErr)
				}
				for _, secret := range []string{"short-secret", keyA, keyB, b64(keyA)} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("the error %q holds a key", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(k.current) != c.wantCurrent || string(k.previous) != c.wantPrevious {
				t.Errorf("keys %q, %q; want %q, %q", k.current, k.previous, c.wantCurrent, c.wantPrevious)
			}
			if c.wantSource != "" && !strings.HasPrefix(k.source, c.wantSource) {
				t.Errorf("source %q, want %q", k.source, c.wantSource)
			}
			for _, secret := range []string{keyA, keyB} {
				if strings.Contains(k.source, secret) {
					t.Errorf("the source %q holds a key", k.source)
				}
			}
		})
	}
}
