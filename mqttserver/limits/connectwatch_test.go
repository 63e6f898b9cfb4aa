package limits

import (
	"bytes"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// connect5 is an MQTT 5 CONNECT with the raw properties props (their length is added) and
// client id "c".
func connect5(props ...byte) []byte {
	vh := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60}, encodeVarint(len(props))...)
	return rawmqtt.Frame(0x10, vh, props, rawmqtt.String("c"))
}

// connect5Will is an MQTT 5 CONNECT with the raw properties props and a will with the raw
// properties willProps.
func connect5Will(props, willProps []byte) []byte {
	vh := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x06, 0, 60}, encodeVarint(len(props))...)
	payload := bytes.Join([][]byte{rawmqtt.String("c"), encodeVarint(len(willProps)), willProps,
		rawmqtt.String("will/t"), rawmqtt.String("bye")}, nil)
	return rawmqtt.Frame(0x10, vh, props, payload)
}

func encodeVarint(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		if n >>= 7; n > 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// TestConnectWatch: the watch finds a Receive Maximum or Maximum Packet Size of 0 wherever it
// is among the properties, and nothing in what is not an MQTT 5 CONNECT, read whole or a byte
// at a time.
func TestConnectWatch(t *testing.T) {
	user := append(append([]byte{packets.PropUser}, rawmqtt.String("k")...), rawmqtt.String(string(make([]byte, 300)))...)
	all := bytes.Join([][]byte{
		{packets.PropSessionExpiryInterval, 0, 0, 0, 0},
		{packets.PropRequestProblemInfo, 0},
		{packets.PropTopicAliasMaximum, 0, 0},
		append([]byte{packets.PropAuthenticationMethod}, rawmqtt.String("m")...),
		append([]byte{packets.PropAuthenticationData}, rawmqtt.String("d")...),
		{packets.PropSubscriptionIdentifier, 0x80, 0x01}, // not in a CONNECT, but skipped by its type
		user,
	}, nil)
	v311 := rawmqtt.Connect{ID: "c", Version: 4, Clean: true}.Encode()
	v311[len(v311)-3] = 0x21 // a byte where MQTT 5 has the properties' length: not read
	for _, c := range []struct {
		name            string
		in              []byte
		receive, packet bool
	}{
		{"no properties", connect5(), false, false},
		{"receive maximum 0", connect5(packets.PropReceiveMaximum, 0, 0), true, false},
		{"receive maximum 1", connect5(packets.PropReceiveMaximum, 0, 1), false, false},
		{"receive maximum 256", connect5(packets.PropReceiveMaximum, 1, 0), false, false},
		{"maximum packet size 0", connect5(packets.PropMaximumPacketSize, 0, 0, 0, 0), false, true},
		{"maximum packet size 1", connect5(packets.PropMaximumPacketSize, 0, 0, 0, 1), false, false},
		{"both 0 after every type", connect5(append(append([]byte{}, all...), packets.PropReceiveMaximum, 0, 0,
			packets.PropMaximumPacketSize, 0, 0, 0, 0)...), true, true},
		{"every type, no limit", connect5(all...), false, false},
		{"receive maximum 0 inside a user property", connect5(append([]byte{packets.PropUser},
			append(rawmqtt.String("\x21\x00\x00"), rawmqtt.String("\x27\x00\x00\x00\x00")...)...)...), false, false},
		{"zeros after the properties", rawmqtt.Frame(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0},
			[]byte{0, 3, 0x21, 0, 0}), false, false},
		{"MQTT 3.1.1", v311, false, false},
		{"MQTT 3.1", rawmqtt.Frame(0x10, []byte{0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 60},
			rawmqtt.String("\x21\x00\x00")), false, false},
		{"not a CONNECT", rawmqtt.Frame(0x30, []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 3, 0x21, 0, 0}), false, false},
		{"value past the properties", rawmqtt.Frame(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 2, 0x21, 0, 0},
			rawmqtt.String("c")), false, false},
		{"properties past the packet", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 9, 0x21, 0, 0}, false, false},
		{"unknown property", connect5(0x7f, packets.PropReceiveMaximum, 0, 0), false, false},
		{"a will's zeros are not the CONNECT's limits", connect5Will(nil, []byte{packets.PropReceiveMaximum, 0, 0,
			packets.PropMaximumPacketSize, 0, 0, 0, 0}), false, false},
		{"five length bytes", []byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 3, 0x21, 0, 0}, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var whole, bytewise connectWatch
			whole.read(c.in)
			for i := range c.in {
				bytewise.read(c.in[i : i+1])
			}
			for _, w := range []connectWatch{whole, bytewise} {
				if w.zeroReceiveMax != c.receive || w.zeroPacketSize != c.packet {
					t.Errorf("% x: receive maximum 0 %v, maximum packet size 0 %v; want %v, %v",
						c.in, w.zeroReceiveMax, w.zeroPacketSize, c.receive, c.packet)
				}
				if !w.done {
					t.Errorf("% x: still reading after the whole packet", c.in)
				}
				if w.twice != 0 {
					t.Errorf("% x: property %#x taken for one given twice", c.in, w.twice)
				}
			}
		})
	}
}

// TestConnectWatchTwice: a property that may be given once, given twice, is found, read whole
// or a byte at a time; a user property may repeat.
func TestConnectWatchTwice(t *testing.T) {
	user := append([]byte{packets.PropUser}, append(rawmqtt.String("k"), rawmqtt.String("v")...)...)
	expiry := []byte{packets.PropMessageExpiryInterval, 0, 0, 0, 5}
	for _, c := range []struct {
		name  string
		props []byte
		will  []byte // the will's properties; nil: no will
		twice byte
	}{
		{"session expiry twice", []byte{packets.PropSessionExpiryInterval, 0, 0, 0, 1, packets.PropSessionExpiryInterval, 0, 0, 0, 2}, nil, packets.PropSessionExpiryInterval},
		{"receive maximum twice, apart", append(append([]byte{packets.PropReceiveMaximum, 0, 1}, user...), packets.PropReceiveMaximum, 0, 2), nil, packets.PropReceiveMaximum},
		{"authentication method twice", append(append([]byte{packets.PropAuthenticationMethod}, rawmqtt.String("m")...),
			append([]byte{packets.PropAuthenticationMethod}, rawmqtt.String("m")...)...), nil, packets.PropAuthenticationMethod},
		{"user property twice", append(append([]byte{}, user...), user...), nil, 0},
		{"each once", append([]byte{packets.PropSessionExpiryInterval, 0, 0, 0, 1, packets.PropReceiveMaximum, 0, 1}, user...), nil, 0},
		{"an identifier's byte inside a value", []byte{packets.PropSessionExpiryInterval, 0, 0, 0, packets.PropSessionExpiryInterval}, nil, 0},
		{"will: message expiry twice", nil, append(append([]byte{}, expiry...), expiry...), packets.PropMessageExpiryInterval},
		{"will: delay twice, apart", nil, append(append([]byte{packets.PropWillDelayInterval, 0, 0, 0, 1}, user...),
			packets.PropWillDelayInterval, 0, 0, 0, 2), packets.PropWillDelayInterval},
		{"will: content type twice", nil, append(append([]byte{packets.PropContentType}, rawmqtt.String("a")...),
			append([]byte{packets.PropContentType}, rawmqtt.String("b")...)...), packets.PropContentType},
		{"will: user property twice", nil, append(append([]byte{}, user...), user...), 0},
		{"will: empty properties", nil, []byte{}, 0},
		{"the same property in the CONNECT and the will", expiry, expiry, 0},
		{"will twice after CONNECT properties", []byte{packets.PropSessionExpiryInterval, 0, 0, 0, 1, packets.PropReceiveMaximum, 0, 1},
			append(append([]byte{}, expiry...), expiry...), packets.PropMessageExpiryInterval},
		{"will: each once", nil, append([]byte{packets.PropPayloadFormat, 1}, expiry...), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := connect5(c.props...)
			if c.will != nil {
				in = connect5Will(c.props, c.will)
			}
			var whole, bytewise connectWatch
			whole.read(in)
			for i := range in {
				bytewise.read(in[i : i+1])
			}
			for _, w := range []connectWatch{whole, bytewise} {
				if w.twice != c.twice || (w.protocolError() != "") != (c.twice != 0) || w.twiceInWill != (c.twice != 0 && c.will != nil) {
					t.Errorf("% x: twice %#x (in the will %v: %q), want %#x", in, w.twice, w.twiceInWill, w.protocolError(), c.twice)
				}
				if !w.done {
					t.Errorf("% x: still reading after the whole packet", in)
				}
			}
		})
	}
}

// TestConnectWatchLongLength: a variable byte integer of more than four bytes, which mochi
// reads, is a protocol error; the watch does not stop short of the limits behind it unseen.
func TestConnectWatchLongLength(t *testing.T) {
	in := rawmqtt.Frame(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0x83, 0x80, 0x80, 0x80, 0x00},
		[]byte{packets.PropReceiveMaximum, 0, 0}, rawmqtt.String("c"))
	var w connectWatch
	w.read(in)
	if !w.longVarint || w.protocolError() == "" {
		t.Errorf("% x: no protocol error (%q)", in, w.protocolError())
	}
}

// TestConnectWatchTruncated: no prefix of a packet, nor any byte changed (here and in a CONNECT
// with a will), makes the watch panic or read on after the properties.
func TestConnectWatchTruncated(t *testing.T) {
	in := connect5(packets.PropSessionExpiryInterval, 0, 0, 0, 1, packets.PropUser, 0, 1, 'k', 0, 1, 'v',
		packets.PropSubscriptionIdentifier, 0x81, 0x01, packets.PropReceiveMaximum, 0, 0)
	for i := range in {
		var w connectWatch
		w.read(in[:i])
		if w.zeroReceiveMax != (i >= len(in)-3) { // the value ends three bytes before the client id's
			t.Errorf("%d bytes of % x: receive maximum 0 %v", i, in, w.zeroReceiveMax)
		}
	}
	withWill := connect5Will([]byte{packets.PropSessionExpiryInterval, 0, 0, 0, 1},
		[]byte{packets.PropWillDelayInterval, 0, 0, 0, 1, packets.PropUser, 0, 1, 'k', 0, 1, 'v'})
	for _, in := range [][]byte{in, withWill} {
		for i := range in {
			for _, b := range []byte{0x00, 0x04, 0x7f, 0x80, 0xff} {
				changed := bytes.Clone(in)
				changed[i] = b
				var w connectWatch
				w.read(changed)
				w.read(bytes.Repeat([]byte{0xff}, 1<<10))
				if !w.done {
					t.Errorf("byte %d set to %#x: still reading 1 KiB past the packet % x", i, b, changed)
				}
			}
		}
	}
}
