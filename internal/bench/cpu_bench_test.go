package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the CPU time used so far by this process and, when s runs its
// plugin as a child process, by the plugin too. Unlike throughput it
// hardly depends on what else the machine is running, which makes it the
// figure to compare when judging an optimisation on a busy machine.
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

// reportCPU reports the CPU time per message since start.
func reportCPU(b *testing.B, s *session, start time.Duration, messages int64) {
	if messages > 0 {
		b.ReportMetric(float64(cpuTime(s)-start)/float64(time.Microsecond)/float64(messages), "cpu-µs/msg")
	}
}
