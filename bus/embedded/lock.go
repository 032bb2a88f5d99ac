package embedded

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFileName is the file in a store directory that the server running on
// it holds locked.
const LockFileName = "eventbus.lock"

// storeLock is the exclusive lock a server holds on its store directory for
// as long as it runs. It is an operating-system file lock: the kernel drops
// it when the process ends, however it ends, so a crash never leaves a stale
// lock behind.
type storeLock struct {
	f *os.File
}

// lockStore takes the lock of dir, or fails with a *StoreInUseError naming
// the process that holds it.
func lockStore(dir string) (*storeLock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%w: store_dir: lock %s: %w", ErrStart, path, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: store_dir: lock %s: %w", ErrStart, path, err)
	}
	if !held {
		owner := readOwner(f)
		f.Close()
		abs, aerr := filepath.Abs(dir)
		if aerr != nil {
			abs = dir
		}
		return nil, &StoreInUseError{Dir: abs, PID: owner.pid, URL: owner.url}
	}
	l := &storeLock{f: f}
	if err := l.note(""); err != nil {
		l.release()
		return nil, fmt.Errorf("%w: store_dir: write %s: %w", ErrStart, path, err)
	}
	return l, nil
}

// note records this process, and the URL its server serves once known, in
// the lock file, for the error a second server on the directory reports.
func (l *storeLock) note(url string) error {
	content := strconv.Itoa(os.Getpid()) + "\n"
	if url != "" {
		content += url + "\n"
	}
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt([]byte(content), 0)
	return err
}

// release drops the lock. The lock file stays: removing it would let a
// server that opened it a moment earlier lock a file no longer in the
// directory.
func (l *storeLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = unlock(l.f)
	_ = l.f.Close()
	l.f = nil
}

// lockOwner is what a lock file says about the process holding it.
type lockOwner struct {
	pid int // 0 when unknown
	url string
}

func readOwner(f *os.File) lockOwner {
	buf := make([]byte, 512)
	n, _ := f.ReadAt(buf, 0)
	lines := strings.Split(strings.TrimSpace(string(buf[:n])), "\n")
	var o lockOwner
	if pid, err := strconv.Atoi(strings.TrimSpace(lines[0])); err == nil && pid > 0 {
		o.pid = pid
	}
	if len(lines) > 1 {
		o.url = strings.TrimSpace(lines[1])
	}
	return o
}
