package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// version is the release this binary reports, a semantic version. It is the
// package's only variable, and it is a variable only so that release builds
// can stamp it:
//
//	go build -ldflags "-X main.version=1.2.3" ./cmd/eventbus
//
// Nothing assigns it at run time; main passes its value to the commands in
// deps, and the commands read only that copy.
var version = "0.1.0"

// newVersionCmd builds `eventbus version`.
func newVersionCmd(d deps) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the eventbus version",
		Args:  withUsageErrors(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(d.stdout, "eventbus %s\n", d.version)
			return err
		},
	}
}
