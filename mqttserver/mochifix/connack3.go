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

// unsupportedLevel gives the 3.1.1 answer to a CONNECT of a protocol level mochi does not serve
// (MQTT with a level other than 4 or 5, MQIsdp other than 3): a 3.1.1 CONNACK with 0x01,
// unacceptable protocol level [MQTT-3.1.2-2], as Mosquitto answers. mochi refuses it with 0x82
// (ConnectValidate, packets.go:451), a code 3.1.1 does not have, in a CONNACK encoded for the
// level the client sent. The reason string tells this 0x82 from mochi's other ones.
func unsupportedLevel(pk *packets.Packet) {
	if pk.ReasonCode == packets.ErrProtocolViolationProtocolVersion.Code &&
		pk.Properties.ReasonString == packets.ErrProtocolViolationProtocolVersion.Reason {
		pk.ReasonCode = packets.Err3UnsupportedProtocolVersion.Code
		pk.ProtocolVersion = 4
	}
}

// noCodeIn311 closes, without a CONNACK, a 3.1.1 connection that mochi refuses with a code MQTT
// 3.1.1 does not have: its MQTT 5 code (0x80 and up) where V5CodesToV3 has no counterpart, as for
// a bad protocol name or the reserved flag (ConnectValidate, packets.go:444). MQTT 3.1.1 closes on
// a CONNECT that does not conform [MQTT-3.1.4-1], as Mosquitto does. mochi cannot encode the
// spoiled packet, and closes the connection.
func noCodeIn311(pk *packets.Packet) {
	if pk.ProtocolVersion < 5 && pk.ReasonCode >= packets.ErrUnspecifiedError.Code {
		pk.FixedHeader.Type = packets.Reserved
	}
}
