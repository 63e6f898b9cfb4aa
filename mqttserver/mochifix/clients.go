package mochifix

import mqtt "github.com/mochi-mqtt/server/v2"

// SessionEnds reports whether MQTT discards a client's session when it disconnects.
func SessionEnds(version byte, clean bool, expiry uint32) bool {
	if version == 5 {
		return expiry == 0
	}
	return clean
}

// KeepsSession reports whether cl is a client whose session outlives its connection (not
// mochi's inline client).
func KeepsSession(cl *mqtt.Client) bool {
	return !cl.Net.Inline && !SessionEnds(cl.Properties.ProtocolVersion, cl.Properties.Clean, cl.Properties.Props.SessionExpiryInterval)
}

// InlinePublisher makes an inline client that publishes as cl: same id (MQTT 5 No Local holds), user
// name and protocol. mochi delivers its messages at once, with no acknowledgement.
func InlinePublisher(server *mqtt.Server, cl *mqtt.Client) *mqtt.Client {
	pub := server.NewClient(nil, cl.Net.Listener, cl.ID, true)
	pub.Properties.Username = cl.Properties.Username
	pub.Properties.ProtocolVersion = cl.Properties.ProtocolVersion
	return pub
}
