package wfplugin

import "github.com/hashicorp/go-plugin"

// Handshake values of the engine's external-plugin protocol. Host and plugin
// must agree on all of them; a plugin started without the cookie refuses to
// run.
const (
	// CoreProtocolVersion is go-plugin's own protocol version, the first
	// field of the handshake line.
	CoreProtocolVersion = plugin.CoreProtocolVersion
	// ProtocolVersion is the application protocol version.
	ProtocolVersion = 1
	// MagicCookieKey is the environment variable the host sets.
	MagicCookieKey = "WORKFLOW_PLUGIN"
	// MagicCookieValue is its value.
	MagicCookieValue = "workflow-external-plugin-v1"
	// PluginName is the key under which the plugin is dispensed.
	PluginName = "plugin"
)

// handshake returns the go-plugin handshake of the protocol.
func handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}
