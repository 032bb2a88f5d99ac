package eventbus

import (
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
	if plan.provider == providerPostgres {
		if plan.pgMaxPayload > 0 {
			return plan.pgMaxPayload, true
		}
		return postgres.DefaultMaxPayload, true
	}
	if plan.target != TargetEmbedded {
		return natsMaxPayload, true
	}
	if n := plan.embedded.MaxPayload; n > 0 {
		return int(n), true
	}
	return embedded.DefaultMaxPayload, true
}
