package main

import (
	"errors"
	"strings"
	"testing"
)

// With nothing listening, every command that connects says so plainly, with
// the URL it tried and what to do, and exits 1.
func TestNoServer(t *testing.T) {
	t.Parallel()
	url := unusedURL(t)
	want := "eventbus: no NATS server at " + url +
		": start one with `eventbus server` in another terminal, or pass --url / set NATS_URL\n"
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{name: "pub with --url", args: []string{"pub", "orders.created", "x", "--url", url}},
		{name: "sub with --url", args: []string{"sub", "orders.created", "--url", url}},
		{name: "streams from NATS_URL", env: map[string]string{"NATS_URL": url}, args: []string{"streams"}},
		{name: "--url wins over NATS_URL", env: map[string]string{"NATS_URL": "nats://127.0.0.1:1"}, args: []string{"streams", "--url", url}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, tt.env, "", tt.args...)
			if res.code != 1 || !errors.Is(res.err, errNoServer) {
				t.Fatalf("exit %d, err %v; want exit 1 and errNoServer", res.code, res.err)
			}
			if res.stderr != want {
				t.Errorf("stderr\n%q\nwant\n%q", res.stderr, want)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing", res.stdout)
			}
		})
	}
}

// A server without JetStream has no streams; pub and streams say that
// rather than blaming the subject.
func TestNoJetStream(t *testing.T) {
	t.Parallel()
	url := startNATS(t, true)
	for _, args := range [][]string{{"streams", "--url", url}, {"pub", "orders.created", "x", "--url", url}} {
		res := runCLI(t, nil, "", args...)
		if res.code != 1 || !errors.Is(res.err, errNoJetStream) {
			t.Errorf("%v: exit %d, err %v; want exit 1 and errNoJetStream", args, res.code, res.err)
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	const pg = "postgres://app:pw@db/app"
	tests := []struct {
		name     string
		flag     string
		env      map[string]string
		want     string
		postgres bool
		from     string
	}{
		{name: "default", want: "nats://127.0.0.1:4222", from: "the default"},
		{name: "env", env: map[string]string{"NATS_URL": "nats://10.0.0.1:4222"}, want: "nats://10.0.0.1:4222", from: "NATS_URL"},
		{name: "blank env ignored", env: map[string]string{"NATS_URL": "  ", "DATABASE_URL": " "}, want: "nats://127.0.0.1:4222"},
		{name: "flag over env", flag: "nats://h:1", env: map[string]string{"NATS_URL": "nats://e:2", "DATABASE_URL": pg}, want: "nats://h:1", from: "--url"},
		{name: "postgres flag", flag: pg, env: map[string]string{"NATS_URL": "nats://e:2"}, want: pg, postgres: true, from: "--url"},
		{name: "postgresql flag", flag: "PostgreSQL://db/app", want: "PostgreSQL://db/app", postgres: true},
		{name: "key=value flag", flag: "host=db dbname=app", want: "host=db dbname=app", postgres: true},
		{name: "bare NATS address flag", flag: "127.0.0.1:4222", want: "127.0.0.1:4222"},
		{name: "DATABASE_URL", env: map[string]string{"DATABASE_URL": pg}, want: pg, postgres: true, from: "DATABASE_URL"},
		{name: "NATS_URL over DATABASE_URL", env: map[string]string{"DATABASE_URL": pg, "NATS_URL": "nats://e:2"}, want: "nats://e:2", from: "NATS_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := connFlags{url: tt.flag}
			got := c.resolve(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if got.url != tt.want || got.postgres != tt.postgres || (tt.from != "" && got.from != tt.from) {
				t.Errorf("resolve = %+v, want %q postgres %v from %q", got, tt.want, tt.postgres, tt.from)
			}
		})
	}
}

// Flags of one kind of broker given for the other are usage errors.
func TestConnFlagsForTheOtherBroker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		says string
	}{
		{name: "--user with a DSN", args: []string{"streams", "--url", "postgres://db/app", "--user", "u"}, says: "PostgreSQL (--url) takes its user and password in the DSN"},
		{name: "--creds with DATABASE_URL", env: map[string]string{"DATABASE_URL": "postgres://db/app"}, args: []string{"pub", "a.b", "--creds", "x.creds"}, says: "(DATABASE_URL)"},
		{name: "--schema with NATS", args: []string{"sub", "a.b", "--schema", "app"}, says: "--schema needs PostgreSQL"},
		{name: "--schema with NATS_URL over DATABASE_URL", env: map[string]string{"DATABASE_URL": "postgres://db/app", "NATS_URL": "nats://n:1"}, args: []string{"streams", "--schema", "app"}, says: "(NATS_URL names a NATS server)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, tt.env, "", tt.args...)
			if res.code != 2 || !errors.Is(res.err, errUsage) || !strings.Contains(res.stderr, tt.says) {
				t.Errorf("exit %d, stderr %q; want 2 and a usage error saying %q", res.code, res.stderr, tt.says)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{in: "nats://127.0.0.1:4222", want: "nats://127.0.0.1:4222"},
		{in: "nats://alice:s3cret@h:4222", want: "nats://redacted@h:4222"},
		{in: "nats://tok3n@h:4222", want: "nats://redacted@h:4222"},
		{in: "nats://a:p@h1:4222, nats://h2:4222", want: "nats://redacted@h1:4222,nats://h2:4222"},
		{in: "nats://a:p%zz@h:4222", want: "nats://redacted@h:4222"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, secret := range []string{"s3cret", "tok3n", ":p@"} {
			if strings.Contains(redactURL(tt.in), secret) {
				t.Errorf("redactURL(%q) leaks %q", tt.in, secret)
			}
		}
	}
}
