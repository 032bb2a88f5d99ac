package main

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// On PostgreSQL, headers, a message ID and a payload from stdin arrive as
// given; a repeated message ID is reported as a duplicate and not stored
// again; DATABASE_URL names the database when --url does not.
func TestPostgresPubHeadersStdinAndDuplicate(t *testing.T) {
	t.Parallel()
	var b cliBroker
	for _, be := range cliBackends {
		if be.name == "postgres" {
			b = be.start(t)
		}
	}
	b.stream(t, "ORDERS", "orders.>")
	args := append([]string{"pub", "orders.created", "-", "--header", "trace=abc", "-H", "tag=a", "-H", "tag=b=c", "--msg-id", "order-1"}, b.envArgs...)
	for _, want := range []string{"published to ORDERS seq 1\n", "published to ORDERS seq 1 (duplicate)\n"} {
		res := runCLI(t, b.env, "line one\nline two\n", args...)
		if res.code != 0 || res.stdout != want {
			t.Fatalf("pub: exit %d, stdout %q, stderr %q; want %q", res.code, res.stdout, res.stderr, want)
		}
	}
	if res := runCLI(t, b.env, "", append([]string{"pub", "orders.empty"}, b.envArgs...)...); res.code != 0 || res.stdout != "published to ORDERS seq 2\n" {
		t.Fatalf("empty pub: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res := runCLI(t, b.env, "", append([]string{"sub", "orders.>", "--stream", "ORDERS", "--count", "2"}, b.envArgs...)...)
	want := "#1 orders.created [tag: a; tag: b=c; trace: abc] \"line one\\nline two\\n\"\n#2 orders.empty \"\"\n"
	if res.code != 0 || res.stdout != want {
		t.Fatalf("sub: exit %d, stdout %q, stderr %q; want %q", res.code, res.stdout, res.stderr, want)
	}
}

// A database that is not there, or has no broker tables in the schema,
// is said so plainly, with the DSN's password left out.
func TestPostgresErrors(t *testing.T) {
	t.Parallel()
	dsn := pg.start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "postgres://app:s3cret@" + l.Addr().String() + "/app"
	l.Close()
	noDB := strings.Replace(strings.Replace(dsn, "/cli?", "/nosuchdb?", 1), "postgres@", "postgres:s3cret@", 1)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		is   error
		says string
	}{
		{name: "nothing listening", args: []string{"pub", "a.b", "x", "--url", closed}, is: errNoDatabase,
			says: "no PostgreSQL database at postgres://app:redacted@" + l.Addr().String() + "/app (from --url): start it, or pass --url / set DATABASE_URL"},
		{name: "no such database", env: map[string]string{"DATABASE_URL": noDB}, args: []string{"streams"}, is: errNoDatabase, says: `database "nosuchdb" does not exist`},
		{name: "no schema", args: []string{"sub", "a.b", "--url", dsn, "--schema", "never_made"}, is: errNoSchema,
			says: `no eventbus schema "never_made" in the database at`},
		{name: "default schema missing", args: []string{"streams", "--url", dsn}, is: errNoSchema, says: `no eventbus schema "eventbus"`},
		{name: "bad schema name", args: []string{"streams", "--url", dsn, "--schema", "Not-A-Schema"}, is: errUsage, says: "schema:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, tt.env, "", tt.args...)
			if res.code == 0 || !errors.Is(res.err, tt.is) || !strings.Contains(res.stderr, tt.says) {
				t.Fatalf("exit %d, stderr %q; want %v saying %q", res.code, res.stderr, tt.is, tt.says)
			}
			if strings.Contains(res.stderr, "s3cret") {
				t.Errorf("stderr shows the password: %q", res.stderr)
			}
		})
	}
}
