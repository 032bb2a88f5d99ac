package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/wfeventbus/eventbus/bus/postgres"
)

// defaultURL is where pub, sub and streams connect when neither --url nor
// NATS_URL says otherwise: the address `eventbus server` listens on.
const defaultURL = "nats://127.0.0.1:4222"

// connectTimeout bounds the dial and handshake when ctx has no deadline.
const connectTimeout = 5 * time.Second

// connFlags are the connection flags shared by the commands that talk to a
// broker: a NATS server, or a PostgreSQL database holding a postgres
// broker's streams.
type connFlags struct {
	url      string
	creds    string
	user     string
	password string
	token    string
	schema   string
}

// register adds the connection flags to fs.
func (c *connFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "NATS server URL, or a PostgreSQL DSN (postgres://...) for a postgres broker (default $NATS_URL, then $DATABASE_URL, then "+defaultURL+")")
	fs.StringVar(&c.creds, "creds", "", "user credentials file (JWT and NKey seed)")
	fs.StringVar(&c.user, "user", "", "user name")
	fs.StringVar(&c.password, "password", "", "password for --user")
	fs.StringVar(&c.token, "token", "", "authentication token")
	fs.StringVar(&c.schema, "schema", "", "with PostgreSQL, the schema of the broker's tables (default "+postgres.DefaultSchema+")")
}

// validate reports contradictory connection flags as a usage error.
func (c *connFlags) validate(lookupEnv func(string) (string, bool)) error {
	methods := 0
	for _, set := range []bool{c.creds != "", c.user != "", c.token != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		return errors.New("--creds, --user and --token are alternatives; pass one of them")
	}
	if c.password != "" && c.user == "" {
		return errors.New("--password needs --user")
	}
	tgt := c.resolve(lookupEnv)
	if tgt.postgres && methods > 0 {
		return fmt.Errorf("--creds, --user and --token log in to NATS; PostgreSQL (%s) takes its user and password in the DSN", tgt.from)
	}
	if !tgt.postgres && c.schema != "" {
		return fmt.Errorf("--schema needs PostgreSQL: a postgres:// --url, or DATABASE_URL without NATS_URL (%s names a NATS server)", tgt.from)
	}
	return nil
}

// target is where a command connects.
type target struct {
	// url is the NATS server list, or the PostgreSQL DSN.
	url      string
	postgres bool
	// from names the setting that gave url.
	from string
}

// resolve returns where to connect. The first of these that is set
// decides: --url (PostgreSQL when it is a postgres:// or postgresql:// URL
// or a key=value DSN, NATS otherwise); NATS_URL; DATABASE_URL
// (PostgreSQL); else the default NATS URL. NATS_URL comes before
// DATABASE_URL because an app's environment often names its database for
// other purposes, while NATS_URL names a broker and nothing else.
func (c *connFlags) resolve(lookupEnv func(string) (string, bool)) target {
	if u := strings.TrimSpace(c.url); u != "" {
		return target{url: u, postgres: isPostgresDSN(u), from: "--url"}
	}
	if v, ok := lookupEnv("NATS_URL"); ok && strings.TrimSpace(v) != "" {
		return target{url: strings.TrimSpace(v), from: "NATS_URL"}
	}
	if v, ok := lookupEnv("DATABASE_URL"); ok && strings.TrimSpace(v) != "" {
		return target{url: strings.TrimSpace(v), postgres: true, from: "DATABASE_URL"}
	}
	return target{url: defaultURL, from: "the default"}
}

// isPostgresDSN reports a PostgreSQL URL or a key=value connection string
// (which has '=' and no scheme; a NATS URL has neither).
func isPostgresDSN(s string) bool {
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://") {
		return true
	}
	return !strings.Contains(s, "://") && strings.Contains(s, "=")
}

// shown is the target as it may be printed: without passwords or tokens.
func (t target) shown() string {
	if t.postgres {
		return postgres.RedactDSN(t.url)
	}
	return redactURL(t.url)
}

// connect dials the server the flags describe. A server that cannot be
// reached is reported as errNoServer with instructions, refused credentials
// as errAuth, both naming the URL with any secrets removed.
func (c *connFlags) connect(ctx context.Context, lookupEnv func(string) (string, bool)) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	serverURL := c.resolve(lookupEnv).url
	timeout := connectTimeout
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < timeout {
		timeout = time.Until(deadline)
	}
	opts := []nats.Option{nats.Name("eventbus-cli"), nats.Timeout(timeout)}
	switch {
	case c.creds != "":
		opts = append(opts, nats.UserCredentials(c.creds))
	case c.user != "":
		opts = append(opts, nats.UserInfo(c.user, c.password))
	case c.token != "":
		opts = append(opts, nats.Token(c.token))
	}
	nc, err := nats.Connect(serverURL, opts...)
	if err != nil {
		return nil, connectError(serverURL, err)
	}
	return nc, nil
}

// connectError turns a failed nats.Connect into an error a person can act on.
func connectError(serverURL string, err error) error {
	shown := redactURL(serverURL)
	switch {
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("%w at %s: start one with `eventbus server` in another terminal, or pass --url / set NATS_URL",
			errNoServer, shown)
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return fmt.Errorf("%w by the NATS server at %s (%v): check --creds, --user/--password or --token",
			errAuth, shown, err)
	default:
		var netErr interface{ Timeout() bool }
		if errors.As(err, &netErr) {
			return fmt.Errorf("%w at %s (%v): start one with `eventbus server` in another terminal, or pass --url / set NATS_URL",
				errNoServer, shown, err)
		}
		return fmt.Errorf("connect to %s: %w", shown, err)
	}
}

// jetStreamError makes the errors of a JetStream API call plain: a server
// without JetStream answers no request on the API subjects.
func jetStreamError(err error) error {
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return fmt.Errorf("%w: start the server with JetStream (eventbus server does)", errNoJetStream)
	}
	return err
}

// redactURL hides the user information of every URL in a comma-separated
// server list, so passwords and tokens never reach the terminal or logs.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		parts[i] = p
		u, err := url.Parse(p)
		if err != nil {
			// Unparsable, but user information still ends at the last '@'.
			if at := strings.LastIndex(p, "@"); at >= 0 {
				scheme := ""
				if i := strings.Index(p, "://"); i >= 0 && i < at {
					scheme = p[:i+3]
				}
				parts[i] = scheme + "redacted" + p[at:]
			}
			continue
		}
		if u.User == nil {
			continue
		}
		u.User = url.User("redacted")
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
