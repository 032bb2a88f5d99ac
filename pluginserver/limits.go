package pluginserver

import (
	"fmt"
	"strconv"

	"github.com/wfeventbus/eventbus/wfplugin"
)

// MaxMessageEnv names the environment variable that raises the largest
// request, in bytes, the plugin process accepts from its host (never below
// wfplugin.DefaultMaxRecvMsgSize). eventbus run sets it to MessageLimit of
// its brokers' max_payload.
const MaxMessageEnv = "EVENTBUS_MAX_MESSAGE_BYTES"

// messageCopies is how many times a message's payload may appear in one
// gRPC message between a host and the plugin: a trigger's data holds it
// once (as text; a payload over eventbus.MaxParsedPayload is not parsed as
// well), and a step's request holds the trigger data, the current data
// (which holds it again), the rendered config and its typed encoding when
// the step forwards it; the last copy is room for headers and the rest.
const messageCopies = 5

// MessageLimit is the largest gRPC message, in bytes, that a host and the
// plugin exchange when the largest message a broker accepts is maxPayload
// bytes: messageCopies times that, and never less than what the plugin
// accepts by default (wfplugin.DefaultMaxRecvMsgSize, 64 MiB). It bounds a
// trigger's data, a step's request and a step's output alike; a consume
// step's output holds a whole batch, so a batch of large messages must fit
// in it too.
func MessageLimit(maxPayload int) int {
	return max(wfplugin.DefaultMaxRecvMsgSize, messageCopies*maxPayload)
}

// maxRecv reads MaxMessageEnv: the plugin's receive limit, or 0 when the
// variable is not set.
func maxRecv(getenv func(string) string) (int, error) {
	v := getenv(MaxMessageEnv)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%s: want a positive number of bytes", MaxMessageEnv, v)
	}
	return max(n, wfplugin.DefaultMaxRecvMsgSize), nil
}
