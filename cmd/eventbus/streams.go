package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// newStreamsCmd builds `eventbus streams`.
func newStreamsCmd(d deps) *cobra.Command {
	conn := &connFlags{}
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "List the JetStream streams: subjects, messages, bytes, consumers",
		Args:  withUsageErrors(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := conn.validate(); err != nil {
				return usageError(cmd, err)
			}
			return runStreams(cmd.Context(), d, conn)
		},
	}
	conn.register(cmd.Flags())
	return cmd
}

// runStreams prints one table row per stream, in the order the server
// lists them (by name).
func runStreams(ctx context.Context, d deps, conn *connFlags) error {
	nc, err := conn.connect(ctx, d.lookupEnv)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var infos []*jetstream.StreamInfo
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		infos = append(infos, info)
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("list streams: %w", jetStreamError(err))
	}
	if len(infos) == 0 {
		fmt.Fprintf(d.stdout, "no streams on %s\n", redactURL(conn.resolveURL(d.lookupEnv)))
		return nil
	}
	tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSUBJECTS\tMESSAGES\tBYTES\tCONSUMERS")
	for _, info := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n",
			info.Config.Name, strings.Join(info.Config.Subjects, ","),
			info.State.Msgs, info.State.Bytes, info.State.Consumers)
	}
	return tw.Flush()
}
