package eventbus

import (
	"strings"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/postgres"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

// natsMaxPayload is the largest max_payload a NATS server can be given.
const natsMaxPayload = 64 << 20

// BrokerMaxPayload returns the largest message, headers included, that the
// broker a module declares accepts: the embedded server's max_payload
// (default 1 MiB), a postgres broker's max_payload (default 1 MiB), or for
// a NATS broker reached by URL the largest any NATS
// server accepts (64 MiB), that server's own setting being known only once
// connected. The config is read as CreateModule reads it; ok is false for a
// module that is no broker or whose config does not read, which
// CreateModule then reports.
func BrokerMaxPayload(typ, name string, config map[string]any, getenv func(string) string) (n int, ok bool) {
	if canonicalModuleType(typ) != TypeBroker {
		return 0, false
	}
	cfg := &eventbusv1.BrokerConfig{}
	if err := decode(config, cfg, "config", false); err != nil {
		return 0, false
	}
	plan, err := planBroker(name, cfg, "", getenv)
	if err != nil {
		return 0, false
	}
	return (&broker{plan: plan}).maxPayload(), true
}

// maxReplicas is the most replicas a NATS stream can have.
const maxReplicas = 5

// singleNode reports whether the broker is one server, which holds one
// replica of a stream at most: the embedded broker.
func (b *broker) singleNode() bool { return b.plan.target == TargetEmbedded }

// holdsOnlyDeclared reports whether the broker holds only the streams and
// consumers its app declares: one the plugin runs itself, which no other
// app or tool manages.
func (b *broker) holdsOnlyDeclared() bool { return b.plan.target == TargetEmbedded }

// maxPayload is the largest message, headers included, the broker accepts
// as far as its config says: the embedded server's max_payload, or the most
// any NATS server accepts for a broker reached by URL, or the postgres
// broker's max_payload.
func (b *broker) maxPayload() int {
	if b.plan.provider == providerPostgres {
		if b.plan.pgMaxPayload > 0 {
			return b.plan.pgMaxPayload
		}
		return postgres.DefaultMaxPayload
	}
	if b.plan.target != TargetEmbedded {
		return natsMaxPayload
	}
	if n := b.plan.embedded.MaxPayload; n > 0 {
		return int(n)
	}
	return embedded.DefaultMaxPayload
}

// checkPlan reports what starting the broker would refuse in its config:
// the settings of the embedded server.
func (b *broker) checkPlan() error {
	if b.plan.target != TargetEmbedded {
		return nil
	}
	err := b.plan.embedded.Validate()
	if err == nil {
		return nil
	}
	// The embedded server names the setting first: "<field>: <reason>".
	msg := strings.TrimPrefix(err.Error(), bus.ErrInvalidConfig.Error()+": ")
	field, reason, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(field, " \t") {
		return &fieldError{field: "config.embedded", kind: ErrConfig, msg: msg}
	}
	return &fieldError{field: "config.embedded." + field, kind: ErrConfig, msg: reason}
}
