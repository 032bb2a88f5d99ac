//go:build !linux

package wfplugin

import "os/exec"

// setProcAttrs has nothing to add where the kernel cannot tie the plugin's
// life to the host's; Close still ends the plugin.
func setProcAttrs(*exec.Cmd) {}

// killGroup has no process group to kill; Kill ends the plugin itself.
func killGroup(int) {}
