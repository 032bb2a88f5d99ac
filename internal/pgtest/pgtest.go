// Package pgtest runs real PostgreSQL servers for tests: initdb in a
// temporary directory, the postgres binary on a free loopback port with
// fsync on, stopped by its own process id.
//
// The cluster files are made once per process (Template) and copied for
// each server, so a server starts in well under a second. When the tests run
// as root, as CI does, the cluster belongs to the unprivileged system user
// "postgres" (which Debian's postgresql package creates), because PostgreSQL
// refuses to run as root.
//
// A machine without PostgreSQL gets an error that says what to install:
// tests report it as a failure, never as a skip.
//
// A package shares one server between its tests from TestMain and gives
// each test a database or schema of its own; a test that restarts or kills
// the server starts its own.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled: the PostgreSQL server binaries were not found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries (initdb, postgres) not found in PATH or /usr/lib/postgresql/*/bin: install them (Debian/Ubuntu: apt-get install postgresql)")

// startWait bounds how long a server may take to accept connections.
const startWait = 60 * time.Second

// owner is who runs the server: nil for the current user, or the system
// user postgres when the current user is root.
type owner struct {
	uid, gid uint32
}

func (o *owner) credential() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if o != nil {
		attr.Credential = &syscall.Credential{Uid: o.uid, Gid: o.gid}
	}
	return attr
}

func (o *owner) chown(path string) error {
	if o == nil {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(o.uid), int(o.gid))
	})
}

// serverOwner returns who must run the server.
func serverOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user to run as, and there is no user postgres (%v): install the postgresql package (apt-get install postgresql), which creates it", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: gid %q: %w", u.Gid, err)
	}
	return &owner{uid: uint32(uid), gid: uint32(gid)}, nil
}

// BinDir returns the directory holding initdb and postgres: the one in
// PATH, else the newest /usr/lib/postgresql/<version>/bin.
func BinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		_, e1 := os.Stat(filepath.Join(d, "initdb"))
		_, e2 := os.Stat(filepath.Join(d, "postgres"))
		if e1 == nil && e2 == nil {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

// versionOf reads the major version out of /usr/lib/postgresql/<v>/bin.
func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Template is a cluster made by initdb, copied for each server.
type Template struct {
	binDir string
	dir    string // holds data/, the cluster
	owner  *owner
}

// NewTemplate runs initdb once in a new temporary directory. Remove it with
// Remove when done.
func NewTemplate(ctx context.Context) (*Template, error) {
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	own, err := serverOwner()
	if err != nil {
		return nil, err
	}
	dir, err := makeDir(own)
	if err != nil {
		return nil, err
	}
	t := &Template{binDir: binDir, dir: dir, owner: own}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--no-locale", "--no-sync")
	cmd.SysProcAttr = own.credential()
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return t, nil
}

// makeDir makes a temporary directory the server's user can use.
func makeDir(own *owner) (string, error) {
	dir, err := os.MkdirTemp("", "pgtest-*")
	if err != nil {
		return "", err
	}
	if err := own.chown(dir); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("hand %s to user postgres: %w", dir, err)
	}
	return dir, nil
}

// Remove deletes the template's files.
func (t *Template) Remove() error { return os.RemoveAll(t.dir) }

// Server is one running PostgreSQL server. Its superuser is postgres, with
// trust authentication, on 127.0.0.1 only.
type Server struct {
	binDir string
	dir    string
	port   int
	owner  *owner

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan error
	log  *os.File
}

// Start copies the template's cluster and starts a server on it.
func (t *Template) Start(ctx context.Context) (*Server, error) {
	dir, err := makeDir(t.owner)
	if err != nil {
		return nil, err
	}
	if err := copyTree(filepath.Join(t.dir, "data"), filepath.Join(dir, "data")); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("copy cluster: %w", err)
	}
	if err := t.owner.chown(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{binDir: t.binDir, dir: dir, owner: t.owner}
	var lastErr error
	// A free port can be taken by someone else before the server binds it;
	// another one is tried then.
	for range 5 {
		if s.port, err = freePort(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		if lastErr = s.start(ctx); lastErr == nil {
			return s, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

// Start starts a server on a fresh cluster of its own; Stop removes it.
func Start(ctx context.Context) (*Server, error) {
	t, err := NewTemplate(ctx)
	if err != nil {
		return nil, err
	}
	defer t.Remove()
	return t.Start(ctx)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs postgres on s's cluster and waits until it accepts
// connections.
func (s *Server) start(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.binDir, "postgres"),
		"-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "fsync=on",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "max_locks_per_transaction=256",
	)
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = s.owner.credential()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exit := make(chan error, 1)
	go func() { exit <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.exit, s.log = cmd, exit, logf
	s.mu.Unlock()

	wctx, cancel := context.WithTimeout(ctx, startWait)
	defer cancel()
	for {
		conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			conn.Close()
			if ready, err := s.ready(wctx); ready {
				return nil
			} else if err != nil {
				_ = s.stop()
				return err
			}
		}
		select {
		case err := <-exit:
			exit <- err
			_ = s.stop()
			return fmt.Errorf("postgres exited while starting (%v): %s", err, s.logTail())
		case <-wctx.Done():
			_ = s.stop()
			return fmt.Errorf("postgres did not accept connections within %v: %s", startWait, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ready reports whether the server takes connections: it refuses them
// while it starts up or recovers.
func (s *Server) ready(ctx context.Context) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, s.DSN("postgres"))
	if err != nil {
		return false, nil
	}
	_ = conn.Close(cctx)
	return true, nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// DSN is the connection URL of database db as the superuser postgres.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", s.Addr(), db)
}

// PID is the process id of the running server, 0 when it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// stop asks the server for a fast shutdown (SIGINT: running transactions
// are rolled back, everything committed is on disk) and waits for it.
func (s *Server) stop() error {
	s.mu.Lock()
	cmd, exit, logf := s.cmd, s.exit, s.log
	s.cmd, s.exit, s.log = nil, nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	defer logf.Close()
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exit:
		return nil
	case <-time.After(startWait):
		_ = cmd.Process.Kill()
		<-exit
		return fmt.Errorf("postgres did not shut down within %v; killed", startWait)
	}
}

// Restart shuts the server down fast, as pg_ctl restart -m fast does, and
// starts it again on the same cluster and port.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

// Stop shuts the server down and removes its files. It is idempotent.
func (s *Server) Stop() error {
	err := s.stop()
	if s.dir != "" {
		if rmErr := os.RemoveAll(s.dir); err == nil {
			err = rmErr
		}
	}
	return err
}

// copyTree copies the directory src to dst, keeping modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// CreateDatabase creates database name and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}
