package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the CPU time used so far by this process and, when s runs its
// plugin as a child process, by the plugin too: host plus plugin, with the
// broker, which runs in the plugin (or, for raw figures and a plugin in
// this process, here). Unlike throughput it hardly depends on what else the
// machine is running, which makes it the figure to compare when judging an
// optimisation on a busy machine.
func cpuTime(s *session) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if s == nil || s.c.Pid() == 0 {
		return total
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.c.Pid()) + "/stat")
	if err != nil {
		return total
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th of them.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return total
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return total + time.Duration(ut+st)*time.Second/clockTicks
}
