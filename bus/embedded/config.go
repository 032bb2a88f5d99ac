package embedded

import (
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/wfeventbus/eventbus/bus"
)

// Defaults applied to zero fields of Config.
const (
	DefaultStoreDir   = "./data/eventbus"
	DefaultHost       = "127.0.0.1"
	DefaultPort       = 4222
	DefaultMaxPayload = 1 << 20

	// RandomPort as Config.Port asks for any free port; read it back with
	// Server.Port.
	RandomPort = -1

	// maxPayloadLimit is the server's per-client outbound buffer; a payload
	// larger than that could never be delivered.
	maxPayloadLimit = 64 << 20
)

// Config configures the embedded server. The zero value is a file-backed
// server on 127.0.0.1:4222 storing under ./data/eventbus.
type Config struct {
	// StoreDir is where the file store lives (default "./data/eventbus").
	// Unused with MemoryOnly.
	StoreDir string
	// Host is the listen address (default "127.0.0.1"). Only loopback hosts
	// are accepted: "localhost", 127.0.0.0/8 or ::1.
	Host string
	// Port is the client port: 0 means 4222, -1 (RandomPort) any free port.
	Port int
	// MemoryOnly runs JetStream without a file store: streams must use
	// memory storage, and nothing survives a shutdown.
	MemoryOnly bool
	// SyncAlways flushes every write of the file store to disk before it is
	// acknowledged: slower, but no acknowledged message is lost on a power
	// failure.
	SyncAlways bool
	// MaxPayload is the largest message the server accepts (default 1 MiB,
	// at most 64 MiB).
	MaxPayload int32
	// ServerName names the server in logs and monitoring; empty lets the
	// server generate one.
	ServerName string
	// Logger receives the server's logs at debug, info, warn and error
	// level; nil discards them.
	Logger *slog.Logger
}

// Validate reports what Start would refuse in cfg, without starting
// anything: an error wrapping bus.ErrInvalidConfig that names the field.
func (cfg Config) Validate() error {
	_, err := cfg.withDefaults()
	return err
}

// withDefaults returns cfg with zero fields set to their defaults, or an
// error wrapping bus.ErrInvalidConfig that names the offending field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.StoreDir == "" {
		cfg.StoreDir = DefaultStoreDir
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if !isLoopback(cfg.Host) {
		return cfg, fmt.Errorf("%w: host: %q is not a loopback address; the embedded server listens on localhost, 127.0.0.0/8 or ::1 only (point url at a NATS server to use the network)", bus.ErrInvalidConfig, cfg.Host)
	}
	switch {
	case cfg.Port == 0:
		cfg.Port = DefaultPort
	case cfg.Port == RandomPort:
	case cfg.Port < 0 || cfg.Port > 65535:
		return cfg, fmt.Errorf("%w: port: %d is not a TCP port (1-65535, 0 for %d, -1 for any free port)", bus.ErrInvalidConfig, cfg.Port, DefaultPort)
	}
	switch {
	case cfg.MaxPayload == 0:
		cfg.MaxPayload = DefaultMaxPayload
	case cfg.MaxPayload < 0 || cfg.MaxPayload > maxPayloadLimit:
		return cfg, fmt.Errorf("%w: max_payload: %d must be between 1 and %d bytes", bus.ErrInvalidConfig, cfg.MaxPayload, maxPayloadLimit)
	}
	if strings.ContainsAny(cfg.ServerName, " \t\r\n") {
		return cfg, fmt.Errorf("%w: server_name: %q must not contain whitespace", bus.ErrInvalidConfig, cfg.ServerName)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// isLoopback reports whether host names the local machine only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
