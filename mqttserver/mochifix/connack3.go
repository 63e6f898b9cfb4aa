package mochifix

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// identifierRejected gives the 3.1.1 answer to a CONNECT with an empty client id and
// CleanSession 0: 0x02, identifier rejected [MQTT-3.1.3-8], as Mosquitto does. mochi refuses it
// with 0x80 (server.go:545), a code MQTT 3.1.1 does not have. mochi assigned the client an id
// (ParseConnect) before it refused it: that is how the case is told.
func identifierRejected(cl *mqtt.Client, pk *packets.Packet) {
	if pk.ProtocolVersion < 5 && pk.ReasonCode == packets.ErrUnspecifiedError.Code &&
		!cl.Properties.Clean && cl.Properties.Props.AssignedClientID != "" {
		pk.ReasonCode = packets.Err3ClientIdentifierNotValid.Code
	}
}
