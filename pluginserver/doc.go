// Package pluginserver serves the eventbus plugin over the engine's wire
// protocol: it adapts an eventbus.Plugin to wfplugin and declares the
// plugin's manifest and typed contracts.
package pluginserver
