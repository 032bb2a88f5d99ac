// Package eventbus is the plugin core: the eventbus.broker, eventbus.stream
// and eventbus.consumer modules, the publish, consume and settlement steps,
// and the subscribe trigger, all over the bus layer.
//
// One Plugin value owns every instance it creates; nothing is global, so
// several plugins (and several brokers inside one) live side by side. The
// wire protocol is not known here: cmd/workflow-plugin-eventbus adapts a
// Plugin to wfplugin.
package eventbus
