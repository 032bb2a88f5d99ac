package eventbus

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/jetstream"
	"github.com/wfeventbus/eventbus/bus/postgres"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

// Environment variables holding the token keys of an app's replicas, in
// base64 (standard alphabet), as `eventbus deploy` passes them to the app.
const (
	// TokenKeyEnv holds the key the replicas sign ack tokens with.
	TokenKeyEnv = "EVENTBUS_TOKEN_KEY"
	// PreviousTokenKeyEnv holds the key being rotated out: tokens signed
	// with it are still accepted.
	PreviousTokenKeyEnv = "EVENTBUS_TOKEN_KEY_PREVIOUS"
)

// maxTokenKeySize bounds a token key: a longer one is almost surely the
// wrong file.
const maxTokenKeySize = 4096

// tokenKeys are the keys a broker's bus signs and checks ack tokens with.
// Without a key each process draws a random one, and only it accepts its
// tokens.
type tokenKeys struct {
	current  []byte
	previous []byte
	// source says where the keys came from, for the start-up log; it
	// never holds a key.
	source string
}

// resolveTokenKeys reads the token keys of a broker. The first of these
// that applies decides:
//
//  1. token_key_file (and token_key_previous_file) in the config;
//  2. EVENTBUS_TOKEN_KEY (and EVENTBUS_TOKEN_KEY_PREVIOUS);
//  3. nothing set: a random key for this process.
//
// A file holds the key itself, surrounding whitespace ignored (the file
// `eventbus deploy --token-key-file` takes); a variable holds it in base64.
// Relative paths are relative to configDir. Errors wrap ErrConfig and name
// the field or variable, never the key.
func resolveTokenKeys(cfg *eventbusv1.BrokerConfig, configDir string, getenv func(string) string) (tokenKeys, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	file, prevFile := strings.TrimSpace(cfg.GetTokenKeyFile()), strings.TrimSpace(cfg.GetTokenKeyPreviousFile())
	env, prevEnv := strings.TrimSpace(getenv(TokenKeyEnv)), strings.TrimSpace(getenv(PreviousTokenKeyEnv))
	var (
		k   tokenKeys
		err error
	)
	switch {
	case file == "" && prevFile != "":
		return tokenKeys{}, fmt.Errorf("%w: token_key_previous_file is set without token_key_file: the previous key is accepted beside a current one, which signs", ErrConfig)
	case file != "":
		if k.current, err = readTokenKeyFile("token_key_file", file, configDir); err != nil {
			return tokenKeys{}, err
		}
		if prevFile != "" {
			if k.previous, err = readTokenKeyFile("token_key_previous_file", prevFile, configDir); err != nil {
				return tokenKeys{}, err
			}
		}
		k.source = "token_key_file"
		if env != "" {
			k.source += " (" + TokenKeyEnv + " is set, but the config decides)"
		}
	case env == "" && prevEnv != "":
		return tokenKeys{}, fmt.Errorf("%w: %s is set without %s: the previous key is accepted beside a current one, which signs", ErrConfig, PreviousTokenKeyEnv, TokenKeyEnv)
	case env != "":
		if k.current, err = decodeTokenKeyEnv(TokenKeyEnv, env); err != nil {
			return tokenKeys{}, err
		}
		if prevEnv != "" {
			if k.previous, err = decodeTokenKeyEnv(PreviousTokenKeyEnv, prevEnv); err != nil {
				return tokenKeys{}, err
			}
		}
		k.source = TokenKeyEnv
	default:
		return tokenKeys{source: "random, this process only (set token_key_file or " + TokenKeyEnv + " to share one between replicas)"}, nil
	}
	if k.previous != nil {
		k.source += ", with a previous key"
	}
	return k, nil
}

// readTokenKeyFile reads the key in the file path, which field names.
func readTokenKeyFile(field, path, configDir string) ([]byte, error) {
	if configDir != "" && !filepath.IsAbs(path) {
		path = filepath.Join(configDir, path)
	}
	info, err := os.Stat(path)
	if err == nil && info.Size() > 4*maxTokenKeySize {
		return nil, fmt.Errorf("%w: %s %s: %d bytes; a token key is %d to %d bytes", ErrConfig, field, path, info.Size(), bus.MinTokenKeySize, maxTokenKeySize)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		// The error names the path and what went wrong, nothing of the
		// content.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%w: %s: cannot read %s: %w", ErrConfig, field, path, err)
	}
	key := []byte(strings.TrimSpace(string(raw)))
	if err := checkTokenKeySize(len(key)); err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrConfig, field, path, err)
	}
	return key, nil
}

// decodeTokenKeyEnv decodes the base64 key in the variable name.
func decodeTokenKeyEnv(name, value string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not base64 (standard alphabet, as eventbus deploy writes it): %w", ErrConfig, name, err)
	}
	if err := checkTokenKeySize(len(key)); err != nil {
		return nil, fmt.Errorf("%w: %s, decoded: %w", ErrConfig, name, err)
	}
	return key, nil
}

// errTokenKeySize says a key's size is out of bounds.
var errTokenKeySize = fmt.Errorf("a token key is %d to %d bytes (for example `openssl rand -base64 32`)", bus.MinTokenKeySize, maxTokenKeySize)

func checkTokenKeySize(n int) error {
	if n < bus.MinTokenKeySize || n > maxTokenKeySize {
		return fmt.Errorf("%d bytes; %w", n, errTokenKeySize)
	}
	return nil
}

// jetstreamOptions are the options that give a JetStream bus the keys.
func (k tokenKeys) jetstreamOptions() []jetstream.Option {
	if k.current == nil {
		return nil
	}
	if k.previous == nil {
		return []jetstream.Option{jetstream.WithTokenKey(k.current)}
	}
	return []jetstream.Option{jetstream.WithTokenKey(k.current, k.previous)}
}

// postgresOptions are the options that give a PostgreSQL bus the keys.
func (k tokenKeys) postgresOptions() []postgres.Option {
	if k.current == nil {
		return nil
	}
	if k.previous == nil {
		return []postgres.Option{postgres.WithTokenKey(k.current)}
	}
	return []postgres.Option{postgres.WithTokenKey(k.current, k.previous)}
}
