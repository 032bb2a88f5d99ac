package postgres_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/app?sslmode=disable", "postgres://app:redacted@db:5432/app?sslmode=disable"},
		{"postgresql://app@db/app", "postgresql://app@db/app"},
		{"postgres://db/app?password=s3cret&user=app", "postgres://db/app?password=redacted&user=app"},
		{"postgres://app:s3%cret@db/app", "postgres://app:redacted@db/app"},
		{"host=db user=app password=s3cret dbname=app", "host=db user=app password=redacted dbname=app"},
		{"host=db password='s3 cr\\'et' dbname=app", "host=db password=redacted dbname=app"},
		{"host=db password = s3cret", "host=db password = redacted"},
		{"host=db dbname=app", "host=db dbname=app"},
	}
	for _, c := range cases {
		if got := postgres.RedactDSN(c.in); got != c.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		cfg   postgres.Config
		field string // "" when valid
	}{
		{"url", postgres.Config{DSN: "postgres://app:pw@db/app"}, ""},
		{"key=value", postgres.Config{DSN: "host=db dbname=app", Schema: "app_bus", PollInterval: time.Second, MaxConns: 4}, ""},
		{"no dsn", postgres.Config{}, "dsn"},
		{"nats url", postgres.Config{DSN: "nats://127.0.0.1:4222"}, "dsn"},
		{"unparsable", postgres.Config{DSN: "postgres://app:pw@db:notaport/app"}, "dsn"},
		{"bad key", postgres.Config{DSN: "host=db nosuchkey"}, "dsn"},
		{"schema", postgres.Config{DSN: "host=db", Schema: "Bad-Name"}, "schema"},
		{"poll interval", postgres.Config{DSN: "host=db", PollInterval: -time.Second}, "poll_interval"},
		{"max conns", postgres.Config{DSN: "host=db", MaxConns: 1}, "max_conns"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.field != "" && (!errors.Is(err, bus.ErrInvalidConfig) || !strings.Contains(err.Error(), c.field+":")):
			t.Errorf("%s: err = %v, want ErrInvalidConfig naming %s", c.name, err, c.field)
		case err != nil && strings.Contains(err.Error(), "pw@"):
			t.Errorf("%s: error shows the password: %v", c.name, err)
		}
	}
}
