package mochifix

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

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

// Resumes reports whether mochi is about to give cl, connecting with pk, the session of the
// client old registered with its id (inheritClientSession, server.go:562): not at a clean start,
// nor when old's session is a clean MQTT 3.1.1 one, which mochi discards. Call it before mochi
// takes the session over (OnSessionEstablish).
func Resumes(server *mqtt.Server, cl *mqtt.Client, pk packets.Packet) (old *mqtt.Client, ok bool) {
	old, found := server.Clients.Get(cl.ID)
	if !found || old == cl || pk.Connect.Clean || old.Properties.Clean && old.Properties.ProtocolVersion < 5 {
		return old, false
	}
	return old, true
}
