package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// newStreamsCmd builds `eventbus streams`.
func newStreamsCmd(d deps) *cobra.Command {
	conn := &connFlags{}
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "List the streams: subjects, messages, bytes, consumers, replicas",
		Long: "streams lists every stream with its subjects, message and byte counts and\n" +
			"consumers, and where it is kept: its replica count, the server leading it\n" +
			"(\"none\" while its replicas elect one, \"-\" on a server that is not\n" +
			"clustered) and the replicas that are behind the leader, as name(offline),\n" +
			"name(lag=N operations) or name(behind); \"-\" when every replica is caught\n" +
			"up. On a cluster, pass every server's URL so the\n" +
			"listing works whichever server is down:\n" +
			"  eventbus streams --url nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222\n" +
			"On PostgreSQL (a postgres:// --url or DSN, or DATABASE_URL) the database keeps\n" +
			"the messages: LEADER and LAGGING are \"-\".",
		Args: withUsageErrors(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := conn.validate(d.lookupEnv); err != nil {
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
	if tgt := conn.resolve(d.lookupEnv); tgt.postgres {
		return runStreamsPostgres(ctx, d, conn, tgt)
	}
	nc, err := conn.connect(ctx, d.lookupEnv)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	infos, err := listStreams(ctx, js)
	if err != nil {
		return fmt.Errorf("list streams: %w", jetStreamError(err))
	}
	if len(infos) == 0 {
		fmt.Fprintf(d.stdout, "no streams on %s\n", conn.resolve(d.lookupEnv).shown())
		return nil
	}
	tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSUBJECTS\tMESSAGES\tBYTES\tCONSUMERS\tREPLICAS\tLEADER\tLAGGING")
	for _, info := range infos {
		leader, lagging := placement(info.Cluster)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n",
			info.Config.Name, strings.Join(info.Config.Subjects, ","),
			info.State.Msgs, info.State.Bytes, info.State.Consumers,
			max(info.Config.Replicas, 1), leader, lagging)
	}
	return tw.Flush()
}

// placement words where a stream is kept: the server leading it ("none"
// while there is no leader), and its replicas that are behind the leader,
// comma-separated, or "-" when every replica is caught up. A replica is
// behind when it is offline, when the leader counts operations it has not
// yet applied, or when the leader has not heard from it lately.
func placement(ci *jetstream.ClusterInfo) (leader, lagging string) {
	// A server that is not clustered reports no cluster information.
	if ci == nil {
		return "-", "-"
	}
	leader = ci.Leader
	if leader == "" {
		leader = "none"
	}
	var behind []string
	for _, p := range ci.Replicas {
		switch {
		case p.Offline:
			behind = append(behind, p.Name+"(offline)")
		case p.Lag > 0:
			behind = append(behind, fmt.Sprintf("%s(lag=%d)", p.Name, p.Lag))
		case !p.Current:
			behind = append(behind, p.Name+"(behind)")
		}
	}
	if len(behind) == 0 {
		return leader, "-"
	}
	return leader, strings.Join(behind, ",")
}

const (
	// listAttempt bounds one listing request. A cluster that has just lost
	// a server can leave a request unanswered; another one gets through.
	listAttempt = 5 * time.Second
	// listAttempts is how many listing requests streams makes before it
	// gives up.
	listAttempts = 3
)

// listStreams returns the information of every stream, asking again when a
// request goes unanswered.
func listStreams(ctx context.Context, js jetstream.JetStream) ([]*jetstream.StreamInfo, error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, listAttempt)
		var infos []*jetstream.StreamInfo
		lister := js.ListStreams(actx)
		for info := range lister.Info() {
			infos = append(infos, info)
		}
		err := lister.Err()
		cancel()
		if err == nil {
			return infos, nil
		}
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || attempt == listAttempts {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("no answer to %d requests: %w", attempt, err)
			}
			return nil, err
		}
	}
}
