package mochifix

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// serverDisconnectsOnlyV5 reports whether pk is a DISCONNECT to a client of MQTT 3.1.1 or
// older, which mochi sends whenever it ends a connection (DisconnectClient, server.go:1429: a
// take-over, a protocol error, shutdown). In MQTT 3.1.1 DISCONNECT goes from client to server
// only (§3.14): the server just closes the connection, as Mosquitto does.
func serverDisconnectsOnlyV5(cl *mqtt.Client, pk *packets.Packet) bool {
	return pk.FixedHeader.Type == packets.Disconnect && cl.Properties.ProtocolVersion < 5
}
