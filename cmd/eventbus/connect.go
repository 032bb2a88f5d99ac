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
)

// defaultURL is where pub, sub and streams connect when neither --url nor
// NATS_URL says otherwise: the address `eventbus server` listens on.
const defaultURL = "nats://127.0.0.1:4222"

// connectTimeout bounds the dial and handshake when ctx has no deadline.
const connectTimeout = 5 * time.Second

// connFlags are the connection flags shared by the commands that talk to a
// NATS server.
type connFlags struct {
	url      string
	creds    string
	user     string
	password string
	token    string
}

// register adds the connection flags to fs.
func (c *connFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "NATS server URL (default $NATS_URL, then "+defaultURL+")")
	fs.StringVar(&c.creds, "creds", "", "user credentials file (JWT and NKey seed)")
	fs.StringVar(&c.user, "user", "", "user name")
	fs.StringVar(&c.password, "password", "", "password for --user")
	fs.StringVar(&c.token, "token", "", "authentication token")
}

// validate reports contradictory connection flags as a usage error.
func (c *connFlags) validate() error {
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
	return nil
}

// resolveURL returns --url when given, else NATS_URL when set, else the
// default.
func (c *connFlags) resolveURL(lookupEnv func(string) (string, bool)) string {
	if c.url != "" {
		return c.url
	}
	if v, ok := lookupEnv("NATS_URL"); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return defaultURL
}

// connect dials the server the flags describe. A server that cannot be
// reached is reported as errNoServer with instructions, refused credentials
// as errAuth, both naming the URL with any secrets removed.
func (c *connFlags) connect(ctx context.Context, lookupEnv func(string) (string, bool)) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	serverURL := c.resolveURL(lookupEnv)
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
