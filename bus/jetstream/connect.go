package jetstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/wfeventbus/eventbus/bus"
)

// DefaultDialTimeout bounds connecting to one server when ctx allows more.
const DefaultDialTimeout = 5 * time.Second

// ConnectConfig says where a NATS server is and how to log in. At most one
// way of logging in may be set: user and password, token, nkey seed, or
// credentials file.
type ConnectConfig struct {
	// URLs are the servers to try, such as "nats://127.0.0.1:4222"; a URL
	// without a scheme means nats://.
	URLs []string
	// Name names the connection in the server's monitoring.
	Name string
	// User and Password log in with a user name.
	User, Password string
	// Token logs in with an authorization token.
	Token string
	// NKeySeed logs in with a user nkey: the seed itself ("SU...") or the
	// path of a file holding it.
	NKeySeed string
	// CredsFile logs in with a decentralized-auth credentials file (JWT and
	// seed).
	CredsFile string
	// TLSCAFile trusts the CA certificates in this PEM file.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile present a client certificate; set both or
	// neither.
	TLSCertFile, TLSKeyFile string
}

// options checks cfg and returns the nats.go options it means. Errors wrap
// bus.ErrInvalidConfig and name the field.
func (cfg ConnectConfig) options() ([]nats.Option, error) {
	if len(cfg.URLs) == 0 {
		return nil, configError("urls", "at least one server URL is required")
	}
	for _, raw := range cfg.URLs {
		if err := checkURL(raw); err != nil {
			return nil, err
		}
	}
	var logins []string
	if cfg.User != "" {
		logins = append(logins, "user")
	} else if cfg.Password != "" {
		return nil, configError("password", "set without a user")
	}
	if cfg.Token != "" {
		logins = append(logins, "token")
	}
	if cfg.NKeySeed != "" {
		logins = append(logins, "nkey_seed")
	}
	if cfg.CredsFile != "" {
		logins = append(logins, "creds_file")
	}
	if len(logins) > 1 {
		return nil, configError(logins[1], "conflicts with %s: set one way of logging in", logins[0])
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		if cfg.TLSCertFile == "" {
			return nil, configError("tls_cert_file", "required with tls_key_file")
		}
		return nil, configError("tls_key_file", "required with tls_cert_file")
	}

	opts := []nats.Option{nats.MaxReconnects(-1)}
	if cfg.Name != "" {
		opts = append(opts, nats.Name(cfg.Name))
	}
	switch {
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.NKeySeed != "":
		opt, err := nkeyOption(cfg.NKeySeed)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCAFile))
	}
	if cfg.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCertFile, cfg.TLSKeyFile))
	}
	return opts, nil
}

func checkURL(raw string) error {
	s := raw
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return configError("urls", "%q is not a URL: %v", raw, err)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return configError("urls", "%q: scheme must be nats, tls, ws or wss", raw)
	}
	if u.Hostname() == "" {
		return configError("urls", "%q has no host", raw)
	}
	return nil
}

// nkeyOption logs in with a user nkey seed given inline or in a file.
func nkeyOption(seed string) (nats.Option, error) {
	if !strings.HasPrefix(seed, "SU") {
		opt, err := nats.NkeyOptionFromSeed(seed)
		if err != nil {
			return nil, configError("nkey_seed", "not a user seed (SU...) and not a readable seed file: %v", err)
		}
		return opt, nil
	}
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, configError("nkey_seed", "not a valid user seed: %v", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, configError("nkey_seed", "not a valid user seed: %v", err)
	}
	return nats.Nkey(pub, kp.Sign), nil
}

// Connect connects to the servers of cfg and returns a connection that
// reconnects forever after it is established. ctx bounds the first
// connection. extra options are applied after cfg's, so they can override
// them (reconnect wait, handlers, ...).
//
// When no server answers, the error wraps bus.ErrNotConnected and says so
// plainly, with what to do about it.
func Connect(ctx context.Context, cfg ConnectConfig, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := DefaultDialTimeout
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); left < timeout {
			timeout = left
		}
	}
	opts = append(opts, nats.Timeout(timeout))
	opts = append(opts, extra...)

	urls := strings.Join(cfg.URLs, ", ")
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoServers) || isDialError(err):
		return nil, fmt.Errorf("%w: nothing is listening at %s: start a NATS server with JetStream enabled there (nats-server -js), correct the url, or leave the url empty to run the embedded server: %w",
			bus.ErrNotConnected, urls, err)
	case errors.Is(err, nats.ErrAuthorization):
		return nil, fmt.Errorf("the NATS server at %s refused the login; check user and password, token, nkey_seed or creds_file: %w", urls, err)
	default:
		return nil, fmt.Errorf("connect to %s: %w", urls, err)
	}
	if err := ctx.Err(); err != nil {
		nc.Close()
		return nil, err
	}
	return nc, nil
}

// isDialError reports a failure to reach a server at all (refused, no
// route, timed out), as opposed to a server that answered and refused.
func isDialError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
