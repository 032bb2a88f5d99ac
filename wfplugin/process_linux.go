package wfplugin

import (
	"os/exec"
	"syscall"
)

// setProcAttrs puts the plugin in its own process group, so killing it also
// ends anything it started (which would otherwise hold its output pipes
// open), and makes the kernel kill it if the host dies without closing it:
// no plugin outlives its host.
func setProcAttrs(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// killGroup kills the plugin's process group.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
