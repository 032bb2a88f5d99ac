// Package pluginserver serves the eventbus plugin to a host: it adapts an
// eventbus.Plugin to wfplugin and declares the plugin's manifest, typed
// contracts and metrics. Serve serves it over the engine's wire protocol
// from a plugin process; LaunchDirect runs the same Server inside the
// host's own process, called without gRPC.
package pluginserver
