package limits

import (
	"context"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
)

// Why this watch: an MQTT 5 CONNECT with a Receive Maximum or a Maximum Packet Size of 0 is a
// protocol error (§3.1.2.11.3, §3.1.2.11.4), but mochi decodes both into plain numbers
// (packets/properties.go:442, :463) where 0 also means absent, and lets the client in. So is a
// property given twice that may be given once (any but the user property, §3.1.2.11, and the
// same in the will's, §3.1.3.2), which mochi decodes one over the other, and a length of more
// than four bytes, which mochi reads (DecodeLength, codec.go:146) and this watch would not
// follow. The connection layer sees the bytes: it reads the properties of a connection's first
// packet, and its will's, as mochi's reader takes them, and flowHook.OnConnect refuses such a
// client by closing the connection without a CONNACK, as Mosquitto 2.0.11 does. After the
// properties, or at anything that is not an MQTT 5 CONNECT, the watch stops: one test per Read
// after that.

// connectStep is what the bytes a connectWatch collects are.
type connectStep uint8

const (
	stepType        connectStep = iota // the fixed header's first byte
	stepLength                         // the remaining length (varint)
	stepName                           // the protocol name's length
	stepLevel                          // the protocol level
	stepFlags                          // the connect flags
	stepClientID                       // the client id's length, before the will's properties
	stepPropsLength                    // the properties' length (varint)
	stepPropID                         // a property identifier
	stepPropValue                      // a one, two or four byte value
	stepPropVarint                     // a varint value
	stepPropString                     // the length of a string or binary value
)

// connectWatch reads the properties of an MQTT 5 CONNECT, chunk by chunk, without keeping it.
type connectWatch struct {
	zeroReceiveMax bool   // Receive Maximum 0
	zeroPacketSize bool   // Maximum Packet Size 0
	twice          byte   // a property that may appear once, seen twice (0: none)
	twiceInWill    bool   // and that was in the will's properties
	longVarint     bool   // a length of more than four bytes: mochi reads it, the watch stops
	seen           uint64 // the properties seen, a bit each (identifiers are below 64)
	v5             bool   // the CONNECT is MQTT 5
	done           bool   // the properties were read, or this is not an MQTT 5 CONNECT, or malformed
	will           bool   // the CONNECT has a will: its properties follow the client id
	inWill         bool   // reading the will's properties

	step    connectStep
	field   [4]byte // the bytes of the current field
	n, want int     // bytes in field, and how many it takes (0: a varint)
	skip    int     // bytes to pass over before the next field
	pos     int     // bytes read
	end     int     // where the packet, then the properties being read, end (pos counts); 0 before
	packet  int     // where the packet ends
	prop    byte    // the property whose value is being read
	strings int     // strings of that value still to come (two for a user property)
}

// read takes the next bytes of the connection.
func (w *connectWatch) read(b []byte) {
	for len(b) > 0 && !w.done {
		if w.skip > 0 {
			n := min(w.skip, len(b))
			w.skip -= n
			w.pos += n
			b = b[n:]
		} else {
			c := b[0]
			b = b[1:]
			w.pos++
			w.field[w.n] = c
			w.n++
			switch {
			case w.want == 0 && c&0x80 != 0: // a varint goes on
				if w.n == len(w.field) { // a fifth byte: malformed, though mochi reads it
					w.longVarint, w.done = true, true
				}
			case w.want == 0 || w.n == w.want:
				w.next()
			}
		}
		switch {
		case w.end > 0 && w.pos > w.end:
			w.done = true // past the end: malformed
		case w.step == stepPropID && w.n == 0 && w.skip == 0 && w.pos == w.end: // the properties end
			w.done = !w.will || w.inWill
			w.inWill, w.end, w.seen = true, w.packet, 0
			w.expect(stepClientID, 2)
		}
	}
}

// expect makes the next field a step of want bytes (0: a varint).
func (w *connectWatch) expect(step connectStep, want int) {
	w.step, w.n, w.want = step, 0, want
}

// next handles the field just complete.
func (w *connectWatch) next() {
	f := w.field[:w.n]
	switch w.step {
	case stepType:
		w.done = f[0]>>4 != packets.Connect
		w.expect(stepLength, 0)
	case stepLength:
		w.end = w.pos + varint(f)
		w.packet = w.end
		w.expect(stepName, 2)
	case stepName:
		w.skip = int(f[0])<<8 | int(f[1])
		w.expect(stepLevel, 1)
	case stepLevel:
		w.v5 = f[0] == 5
		w.done = !w.v5
		w.expect(stepFlags, 1)
	case stepFlags:
		w.will = f[0]&0x04 != 0
		w.skip = 2 // keep alive
		w.expect(stepPropsLength, 0)
	case stepClientID:
		w.skip = int(f[0])<<8 | int(f[1])
		w.expect(stepPropsLength, 0)
	case stepPropsLength:
		if end := w.pos + varint(f); end <= w.end {
			w.end = end
		} else {
			w.done = true
		}
		w.expect(stepPropID, 1)
	case stepPropID:
		w.prop = f[0]
		if w.prop < 64 && w.prop != packets.PropUser { // an unknown identifier ends the watch below
			bit := uint64(1) << w.prop
			if w.seen&bit != 0 && w.twice == 0 {
				w.twice, w.twiceInWill = w.prop, w.inWill
			}
			w.seen |= bit
		}
		w.property()
	case stepPropValue:
		zero := w.pos <= w.end && !w.inWill
		for _, c := range f {
			zero = zero && c == 0
		}
		w.zeroReceiveMax = w.zeroReceiveMax || zero && w.prop == packets.PropReceiveMaximum
		w.zeroPacketSize = w.zeroPacketSize || zero && w.prop == packets.PropMaximumPacketSize
		w.expect(stepPropID, 1)
	case stepPropVarint:
		w.expect(stepPropID, 1)
	case stepPropString:
		w.skip = int(f[0])<<8 | int(f[1])
		if w.strings--; w.strings > 0 {
			w.expect(stepPropString, 2)
		} else {
			w.expect(stepPropID, 1)
		}
	}
}

// property sets the steps that read the value of property w.prop, by its type (MQTT 5
// §2.2.2.2); an unknown property ends the watch.
func (w *connectWatch) property() {
	switch w.prop {
	case packets.PropPayloadFormat, packets.PropRequestProblemInfo, packets.PropRequestResponseInfo, packets.PropMaximumQos,
		packets.PropRetainAvailable, packets.PropWildcardSubAvailable, packets.PropSubIDAvailable, packets.PropSharedSubAvailable:
		w.expect(stepPropValue, 1)
	case packets.PropServerKeepAlive, packets.PropReceiveMaximum, packets.PropTopicAliasMaximum, packets.PropTopicAlias:
		w.expect(stepPropValue, 2)
	case packets.PropMessageExpiryInterval, packets.PropSessionExpiryInterval, packets.PropWillDelayInterval,
		packets.PropMaximumPacketSize:
		w.expect(stepPropValue, 4)
	case packets.PropSubscriptionIdentifier:
		w.expect(stepPropVarint, 0)
	case packets.PropContentType, packets.PropResponseTopic, packets.PropCorrelationData, packets.PropAssignedClientID,
		packets.PropAuthenticationMethod, packets.PropAuthenticationData, packets.PropResponseInfo, packets.PropServerReference,
		packets.PropReasonString:
		w.strings = 1
		w.expect(stepPropString, 2)
	case packets.PropUser:
		w.strings = 2
		w.expect(stepPropString, 2)
	default:
		w.done = true
	}
}

// varint decodes a complete variable byte integer.
func varint(b []byte) int {
	v, shift := 0, 0
	for _, c := range b {
		v |= int(c&0x7f) << shift
		shift += 7
	}
	return v
}

// protocolError says which limit of the CONNECT read was 0, or "".
func (w *connectWatch) protocolError() string {
	switch {
	case w.zeroReceiveMax:
		return "receive maximum 0 (MQTT 5 §3.1.2.11.3)"
	case w.zeroPacketSize:
		return "maximum packet size 0 (MQTT 5 §3.1.2.11.4)"
	case w.longVarint:
		return "a variable byte integer of more than four bytes (MQTT 5 §1.5.5)"
	case w.twice != 0 && w.twiceInWill:
		return fmt.Sprintf("will property %#02x more than once (MQTT 5 §3.1.3.2)", w.twice)
	case w.twice != 0:
		return fmt.Sprintf("property %#02x more than once (MQTT 5 §3.1.2.11)", w.twice)
	}
	return ""
}

// OnConnect refuses an MQTT 5 CONNECT whose Receive Maximum or Maximum Packet Size was 0: the
// connection is closed without a CONNACK (MQTT 5 §3.1.4 allows either), as Mosquitto does.
func (h *flowHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	c, ok := cl.Net.Conn.(*flowConn)
	if !ok || cl.Properties.ProtocolVersion != 5 {
		return nil
	}
	why := c.connect.protocolError()
	if why == "" {
		return nil
	}
	h.flow.log.LogAttrs(context.Background(), slog.LevelDebug, eventlog.MsgConnectRefused, slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote), slog.String("reason", "protocol error: "+why))
	return violation{packets.ErrProtocolViolation, why}
}
