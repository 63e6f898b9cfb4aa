package limits

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Protocol errors mochi v2.7.9 lets through (mochifix/doc.go, "Limits"). Each ends the
// connection, as Mosquitto 2.0.11 does; an MQTT 5 client is told why in a DISCONNECT first.

// violation is a packet that ends its connection: code is the DISCONNECT's reason code.
type violation struct {
	code packets.Code
	why  string
}

func (v violation) Error() string { return v.why + " (" + v.code.Reason + ")" }

// Is makes a violation mochi's ErrRejectPacket, the one OnPacketRead error that ends the
// connection, and its own reason code.
func (v violation) Is(target error) bool {
	return target == packets.ErrRejectPacket || target == v.code
}

// checkPacket returns the violation pk is, or nil. aliases is the Topic Alias Maximum the
// broker gave the client.
func checkPacket(cl *mqtt.Client, pk packets.Packet, aliases uint16) error {
	v5 := cl.Properties.ProtocolVersion == 5
	switch pk.FixedHeader.Type {
	case packets.Subscribe:
		for _, f := range pk.Filters {
			if !wholeLevels(f.Filter) { // mochi grants x/y+ and answers x/# + with 0x8F
				// Mosquitto ends the connection (0x81): the filter is malformed, not refused.
				return violation{packets.ErrMalformedPacket, "a wildcard must occupy a whole topic level (MQTT-4.7.1-2, MQTT-4.7.1-3): " + f.Filter}
			}
			if v5 && f.NoLocal && mqtt.IsSharedFilter(f.Filter) { // mochi answers SUBACK 0x82, not a SUBACK code
				return violation{packets.ErrProtocolViolation, "No Local on a shared subscription (MQTT-3.8.3-4): " + f.Filter}
			}
		}
		if ids := pk.Properties.SubscriptionIdentifier; v5 && len(ids) > 0 && ids[0] == 0 {
			return violation{packets.ErrProtocolViolation, "subscription identifier 0 (MQTT 5 §3.8.2.1.2)"}
		}
	case packets.Publish:
		// An empty topic names the alias's topic; mochi publishes to the empty topic when the
		// alias was never set. An alias over the maximum is mochi's to refuse (0x94).
		if a := pk.Properties.TopicAlias; v5 && pk.TopicName == "" && pk.Properties.TopicAliasFlag && a > 0 && a <= aliases &&
			!aliasKnown(cl, a) {
			return violation{packets.ErrProtocolViolation, "empty topic with a topic alias never set (MQTT-3.3.2-12)"}
		}
	}
	return nil
}

// aliasKnown tells whether the client has set topic alias a. mochi's inbound table has no
// lookup: Set with an empty topic returns the alias's topic and changes nothing when it is
// set; when it is not, it records an empty topic, harmless as the client is then disconnected.
func aliasKnown(cl *mqtt.Client, a uint16) bool {
	return cl.State.TopicAliases.Inbound.Set(a, "") != ""
}

// wholeLevels tells whether every wildcard of filter is a whole level, # the last one.
func wholeLevels(filter string) bool {
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if len(l) > 1 && strings.ContainsAny(l, "+#") || l == "#" && i != len(levels)-1 {
			return false
		}
	}
	return true
}

// refuse ends cl's connection for err: an MQTT 5 client gets a DISCONNECT with its reason code
// first (MQTT 3.1.1 has no DISCONNECT from the server).
func refuse(server *mqtt.Server, cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion == 5 {
		_ = server.DisconnectClient(cl, code) // writes the DISCONNECT, then closes
		return
	}
	cl.Stop(code)
}

// answerSysPublish answers a QoS 1 or 2 PUBLISH to a $SYS topic, which mochi drops without a
// word (processPublish, server.go:859: IsValidFilter refuses $SYS topic names to publishers),
// so that the client waited for its acknowledgement for ever. As Mosquitto does, the message
// is acknowledged and dropped: MQTT 3.1.1 has no other answer, MQTT 5 says 0x87 (not authorised).
func answerSysPublish(cl *mqtt.Client, pk packets.Packet) {
	topic := pk.TopicName
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 || cl.Net.Inline ||
		len(topic) < len(mqtt.SysPrefix) || topic[0] != '$' || !strings.EqualFold(topic[:len(mqtt.SysPrefix)], mqtt.SysPrefix) {
		return
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec // a PUBREL then finds nothing held: PUBCOMP
	}
	if cl.Properties.ProtocolVersion == 5 {
		ack.ReasonCode = packets.ErrNotAuthorized.Code
	}
	_ = cl.WritePacket(ack)
}

// withAliasTopic gives an MQTT 5 PUBLISH that names its topic by a known alias alone that topic,
// before mochi's checks: mochi checks the empty topic against the access rules and looks the
// alias up only after (processPublish, server.go:867, :905), so that with -auth every such
// PUBLISH was refused (0x87) and topic aliases could not be used. An alias never set was refused
// by checkPacket already.
func withAliasTopic(cl *mqtt.Client, pk *packets.Packet, aliases uint16) {
	if a := pk.Properties.TopicAlias; pk.FixedHeader.Type == packets.Publish && pk.TopicName == "" &&
		pk.Properties.TopicAliasFlag && a > 0 && a <= aliases && cl.Properties.ProtocolVersion == 5 {
		pk.TopicName = cl.State.TopicAliases.Inbound.Set(a, "")
	}
}
