package postgres

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wfeventbus/eventbus/bus"
)

// Defaults of Config and the options.
const (
	// DefaultSchema holds the backend's tables when Config.Schema is empty.
	DefaultSchema = "eventbus"
	// DefaultPollInterval is how often a waiting fetch looks for messages
	// when nothing woke it: the only way it learns of them with PollOnly,
	// a fallback for a lost notification otherwise.
	DefaultPollInterval = time.Second
	// DefaultMaxConns bounds the connection pool Connect makes.
	DefaultMaxConns = 16
	// DefaultMaxPayload is the largest message (subject, headers and
	// payload) a stream without max_msg_size takes: NATS's default, so an
	// app behaves the same on either backend.
	DefaultMaxPayload = 1 << 20
	// DefaultCloseTimeout is how long Close lets running handlers finish.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultMaintenanceInterval is how often limits, max_age, interest
	// retention and the duplicate window are enforced in the background.
	DefaultMaintenanceInterval = time.Second
)

// maxSchemaLen is PostgreSQL's longest identifier.
const maxSchemaLen = 63

// Config says where the database is and how the Bus uses it.
type Config struct {
	// DSN is the connection string (postgres://user:pass@host:port/db?...
	// or key=value form). Required by Connect; New takes a pool instead.
	DSN string
	// Schema holds the backend's tables and functions (default "eventbus"),
	// so the Bus can live in an application's own database. It is created
	// and migrated on start.
	Schema string
	// PollInterval is how often a waiting fetch looks for new messages
	// when nothing wakes it (default 1s).
	PollInterval time.Duration
	// MaxConns bounds the pool Connect makes (default 16); the Bus also
	// keeps one connection of its own for LISTEN unless PollOnly.
	MaxConns int32
	// PollOnly turns LISTEN/NOTIFY off (the broker setting notify: false):
	// other processes' messages are found by polling every PollInterval.
	// Needed behind PgBouncer in transaction pooling mode, which cannot
	// carry LISTEN.
	PollOnly bool
	// ApplicationName names the Bus's connections in pg_stat_activity
	// unless the DSN sets application_name itself.
	ApplicationName string
}

// Validate checks cfg as Connect does before it connects, with no I/O:
// the DSN must parse, the other fields be in range. Errors wrap
// bus.ErrInvalidConfig and name the field; none holds the DSN's password.
func (cfg Config) Validate() error {
	cfg, err := cfg.withDefaults(true)
	if err != nil {
		return err
	}
	_, err = cfg.poolConfig()
	return err
}

// poolConfig is the pool configuration cfg (with defaults) means.
func (cfg Config) poolConfig() (*pgxpool.Config, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgconn's error shows the DSN with its password masked.
		return nil, configError("dsn", "%v", err)
	}
	pcfg.MaxConns = cfg.MaxConns
	if _, set := pcfg.ConnConfig.RuntimeParams["application_name"]; !set && cfg.ApplicationName != "" {
		pcfg.ConnConfig.RuntimeParams["application_name"] = cfg.ApplicationName
	}
	return pcfg, nil
}

// RedactDSN returns dsn, a URL or key=value connection string, with its
// password replaced by "redacted", for logs and error messages.
func RedactDSN(dsn string) string {
	const mask = "redacted"
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// Unparsable, but a password still sits between the last ':'
			// before the last '@' and that '@'.
			if at := strings.LastIndex(dsn, "@"); at >= 0 {
				head := dsn[:at]
				if c := strings.LastIndex(head, ":"); c > strings.Index(head, "://")+2 {
					return head[:c+1] + mask + dsn[at:]
				}
			}
			return dsn
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), mask)
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", mask)
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPassword.ReplaceAllString(dsn, "${1}"+mask)
}

// kvPassword matches the value of password in a key=value connection
// string: quoted (with \' escapes) or up to the next space.
var kvPassword = regexp.MustCompile(`(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)`)

// withDefaults checks cfg and fills in its zero fields. needDSN is set when
// the Bus makes its own pool.
func (cfg Config) withDefaults(needDSN bool) (Config, error) {
	if needDSN {
		if strings.TrimSpace(cfg.DSN) == "" {
			return cfg, configError("dsn", "required")
		}
		if strings.Contains(cfg.DSN, "://") {
			u, err := url.Parse(cfg.DSN)
			if err != nil {
				return cfg, configError("dsn", "not a URL: %v", redact(err))
			}
			if u.Scheme != "postgres" && u.Scheme != "postgresql" {
				return cfg, configError("dsn", "scheme %q must be postgres or postgresql", u.Scheme)
			}
		}
	}
	if cfg.Schema == "" {
		cfg.Schema = DefaultSchema
	}
	if err := checkSchema(cfg.Schema); err != nil {
		return cfg, err
	}
	switch {
	case cfg.PollInterval < 0:
		return cfg, configError("poll_interval", "%s is negative", cfg.PollInterval)
	case cfg.PollInterval == 0:
		cfg.PollInterval = DefaultPollInterval
	case cfg.PollInterval < time.Millisecond:
		return cfg, configError("poll_interval", "%s is shorter than 1ms", cfg.PollInterval)
	}
	switch {
	case cfg.MaxConns < 0:
		return cfg, configError("max_conns", "%d is negative", cfg.MaxConns)
	case cfg.MaxConns == 0:
		cfg.MaxConns = DefaultMaxConns
	case cfg.MaxConns < 2:
		return cfg, configError("max_conns", "%d is too few: publishing, fetching and settling run side by side; use at least 2", cfg.MaxConns)
	}
	return cfg, nil
}

// checkSchema accepts lower-case ASCII identifiers, so that the schema and
// the notification channel named after it need no quoting surprises.
func checkSchema(s string) error {
	if len(s) > maxSchemaLen {
		return configError("schema", "%q is longer than %d characters", s, maxSchemaLen)
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return configError("schema", "%q: use lower-case letters, digits and '_', starting with a letter or '_'", s)
		}
	}
	if strings.HasPrefix(s, "pg_") {
		return configError("schema", "%q: names starting with pg_ are reserved by PostgreSQL", s)
	}
	return nil
}

// redact drops a URL error's copy of the URL, which may hold a password.
func redact(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}

// Option configures a Bus. Options check their own argument; New and
// Connect report the first bad one, wrapping bus.ErrInvalidConfig.
type Option func(*options) error

type options struct {
	tokenKey            []byte
	previousTokenKeys   [][]byte
	logger              *slog.Logger
	closeTimeout        time.Duration
	maxPayload          int
	maintenanceInterval time.Duration
}

func defaultOptions() options {
	return options{
		logger:              slog.New(slog.DiscardHandler),
		closeTimeout:        DefaultCloseTimeout,
		maxPayload:          DefaultMaxPayload,
		maintenanceInterval: DefaultMaintenanceInterval,
	}
}

// WithTokenKey signs ack tokens with key and accepts tokens signed with key
// or with any of previous, the keys being rotated out (each at least
// bus.MinTokenKeySize bytes). Buses on one database that share the key
// settle each other's tokens; without it the Bus draws a random key, so its
// tokens mean nothing to any other Bus.
func WithTokenKey(key []byte, previous ...[]byte) Option {
	return func(o *options) error {
		if key == nil {
			key = []byte{}
		}
		// A codec built from the keys is the check of them.
		if _, err := bus.NewTokenCodec(key, previous...); err != nil {
			return err
		}
		o.tokenKey = append([]byte(nil), key...)
		o.previousTokenKeys = make([][]byte, len(previous))
		for i, p := range previous {
			o.previousTokenKeys[i] = append([]byte(nil), p...)
		}
		return nil
	}
}

// WithLogger receives what the Bus has to report outside a call's result,
// such as a lost LISTEN connection or a failed background trim. nil
// discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		o.logger = l
		return nil
	}
}

// WithCloseTimeout is how long Close lets running handlers finish before it
// cancels their context (default 5s).
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("%w: close timeout: must not be negative, got %s", bus.ErrInvalidConfig, d)
		}
		o.closeTimeout = d
		return nil
	}
}

// WithMaxPayload is the largest message, subject and headers included, a
// stream without its own max_msg_size takes (default 1 MiB).
func WithMaxPayload(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 256<<20 {
			return fmt.Errorf("%w: max payload: %d is not between 1 and 256 MiB", bus.ErrInvalidConfig, n)
		}
		o.maxPayload = n
		return nil
	}
}

// WithMaintenanceInterval is how often the Bus enforces max_msgs,
// max_bytes, max_age, interest retention and the duplicate window in the
// background (default 1s). Of all Buses on one schema, one at a time does
// the work.
func WithMaintenanceInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: maintenance interval: must be positive, got %s", bus.ErrInvalidConfig, d)
		}
		o.maintenanceInterval = d
		return nil
	}
}
