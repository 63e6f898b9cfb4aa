// Package rawmqtt is raw MQTT packets, encoded and read with mochi's packets package, for the
// health probe, tests, fuzzing and the bench: code that must see or choose every byte on the
// wire, which a client library hides.
package rawmqtt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mochi-mqtt/server/v2/packets"
)

// codecs are mochi's encoder and decoder of each packet type.
var codecs = map[byte]struct {
	encode func(*packets.Packet, *bytes.Buffer) error
	decode func(*packets.Packet, []byte) error
}{
	packets.Connect:     {(*packets.Packet).ConnectEncode, (*packets.Packet).ConnectDecode},
	packets.Connack:     {(*packets.Packet).ConnackEncode, (*packets.Packet).ConnackDecode},
	packets.Publish:     {(*packets.Packet).PublishEncode, (*packets.Packet).PublishDecode},
	packets.Puback:      {(*packets.Packet).PubackEncode, (*packets.Packet).PubackDecode},
	packets.Pubrec:      {(*packets.Packet).PubrecEncode, (*packets.Packet).PubrecDecode},
	packets.Pubrel:      {(*packets.Packet).PubrelEncode, (*packets.Packet).PubrelDecode},
	packets.Pubcomp:     {(*packets.Packet).PubcompEncode, (*packets.Packet).PubcompDecode},
	packets.Subscribe:   {(*packets.Packet).SubscribeEncode, (*packets.Packet).SubscribeDecode},
	packets.Suback:      {(*packets.Packet).SubackEncode, (*packets.Packet).SubackDecode},
	packets.Unsubscribe: {(*packets.Packet).UnsubscribeEncode, (*packets.Packet).UnsubscribeDecode},
	packets.Unsuback:    {(*packets.Packet).UnsubackEncode, (*packets.Packet).UnsubackDecode},
	packets.Pingreq:     {(*packets.Packet).PingreqEncode, (*packets.Packet).PingreqDecode},
	packets.Pingresp:    {(*packets.Packet).PingrespEncode, (*packets.Packet).PingrespDecode},
	packets.Disconnect:  {(*packets.Packet).DisconnectEncode, (*packets.Packet).DisconnectDecode},
	packets.Auth:        {(*packets.Packet).AuthEncode, (*packets.Packet).AuthDecode},
}

// Encode encodes pk with mochi's encoder for pk.FixedHeader.Type, setting the flags MQTT fixes
// for PUBREL, SUBSCRIBE and UNSUBSCRIBE. It returns nil for a packet mochi will not encode (a
// PUBLISH at QoS 1 or 2, a SUBSCRIBE or an UNSUBSCRIBE, without packet id; an unknown type):
// Frame builds those.
func Encode(pk packets.Packet) []byte {
	switch pk.FixedHeader.Type {
	case packets.Pubrel, packets.Subscribe, packets.Unsubscribe:
		pk.FixedHeader.Qos = 1
	}
	c, ok := codecs[pk.FixedHeader.Type]
	if !ok {
		return nil
	}
	var buf bytes.Buffer
	if err := c.encode(&pk, &buf); err != nil {
		return nil
	}
	return buf.Bytes()
}

// Connect is what a CONNECT says; the zero value is an MQTT 3.1.1 CONNECT with an empty id.
type Connect struct {
	ID             string
	Version        byte   // 4 (MQTT 3.1.1, also when 0) or 5
	Clean          bool   // clean session (3.1.1), clean start (5)
	KeepAlive      uint16 // seconds; 0 never times out
	User, Password string // each sent when not empty
	WillTopic      string // a will is sent when not empty
	WillPayload    []byte
	WillQoS        byte
	WillRetain     bool
	Properties     packets.Properties // MQTT 5 only: session expiry, receive maximum...
}

// Packet is c as mochi's packet, for a caller that changes what Connect cannot say.
func (c Connect) Packet() packets.Packet {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: c.Version,
		Properties:      c.Properties,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: c.ID,
			Clean:            c.Clean,
			Keepalive:        c.KeepAlive,
			UsernameFlag:     c.User != "",
			Username:         []byte(c.User),
			PasswordFlag:     c.Password != "",
			Password:         []byte(c.Password),
			WillFlag:         c.WillTopic != "",
			WillTopic:        c.WillTopic,
			WillPayload:      c.WillPayload,
			WillQos:          c.WillQoS,
			WillRetain:       c.WillRetain,
		},
	}
	if pk.ProtocolVersion == 0 {
		pk.ProtocolVersion = 4
	}
	return pk
}

// Encode encodes the CONNECT.
func (c Connect) Encode() []byte { return Encode(c.Packet()) }

// Subscribe is an MQTT 3.1.1 SUBSCRIBE to one filter.
func Subscribe(id uint16, filter string, qos byte) []byte {
	return Encode(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
		PacketID:    id,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
}

// Publish is an MQTT 3.1.1 PUBLISH; id is left out at QoS 0.
func Publish(topic string, qos byte, id uint16, payload []byte) []byte {
	if qos == 0 {
		id = 0
	}
	return Encode(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		PacketID:    id,
		Payload:     payload,
	})
}

// Ack is an MQTT 3.1.1 PUBACK, PUBREC, PUBREL or PUBCOMP (typ) for packet id.
func Ack(typ byte, id uint16) []byte {
	return Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id})
}

// Pingreq is a PINGREQ.
func Pingreq() []byte {
	return Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
}

// Disconnect is an MQTT 3.1.1 DISCONNECT.
func Disconnect() []byte {
	return Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
}

// Frame is a packet with any first byte and the body given, for the malformed packets mochi
// will not encode; only the remaining length is computed, by mochi's fixed header encoder.
func Frame(header byte, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	fh := packets.FixedHeader{
		Type:      header >> 4,
		Dup:       header&0x08 != 0,
		Qos:       header >> 1 & 0x03,
		Retain:    header&0x01 != 0,
		Remaining: len(b),
	}
	var buf bytes.Buffer
	fh.Encode(&buf)
	buf.Write(b)
	return buf.Bytes()
}

// String is an MQTT string (two length bytes, then the bytes), for bodies given to Frame.
func String(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

var errLength = errors.New("malformed remaining length")

// Read reads one whole packet, fixed header included. It reads no byte past the packet, so r
// may be a bare connection.
func Read(r io.Reader) ([]byte, error) {
	br := byteReader{r: r}
	if _, err := br.ReadByte(); err != nil {
		return nil, err
	}
	n, _, err := packets.DecodeLength(&br)
	if err != nil {
		return nil, err
	}
	pk := append(br.read, make([]byte, n)...)
	if _, err := io.ReadFull(r, pk[len(br.read):]); err != nil {
		return nil, err
	}
	return pk, nil
}

// byteReader reads one byte at a time and keeps them: a packet's fixed header.
type byteReader struct {
	r    io.Reader
	read []byte
}

func (b *byteReader) ReadByte() (byte, error) {
	if len(b.read) == 5 { // the type byte and at most four length bytes
		return 0, errLength
	}
	var c [1]byte
	if _, err := io.ReadFull(b.r, c[:]); err != nil {
		return 0, err
	}
	b.read = append(b.read, c[0])
	return c[0], nil
}

// Decode decodes a whole packet read by Read, of a client speaking version (4 or 5), with
// mochi's decoder for its type.
func Decode(raw []byte, version byte) (packets.Packet, error) {
	pk := packets.Packet{ProtocolVersion: version}
	if len(raw) == 0 {
		return pk, io.ErrUnexpectedEOF
	}
	if err := pk.FixedHeader.Decode(raw[0]); err != nil {
		return pk, err
	}
	r := bytes.NewReader(raw[1:])
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		return pk, err
	}
	if n != r.Len() {
		return pk, fmt.Errorf("remaining length %d, body %d bytes", n, r.Len())
	}
	pk.FixedHeader.Remaining = n
	c, ok := codecs[pk.FixedHeader.Type]
	if !ok {
		return pk, fmt.Errorf("no decoder for packet type %d", pk.FixedHeader.Type)
	}
	return pk, c.decode(&pk, raw[len(raw)-n:])
}

// Reader reads packets from a buffered connection into one reused buffer, for read loops that
// must not allocate per packet.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader returns a Reader of r.
func NewReader(r *bufio.Reader) *Reader { return &Reader{r: r} }

// Next reads one packet: its fixed header and its body, valid until the next call.
func (r *Reader) Next() (packets.FixedHeader, []byte, error) {
	var fh packets.FixedHeader
	h, err := r.r.ReadByte()
	if err != nil {
		return fh, nil, err
	}
	if err := fh.Decode(h); err != nil {
		return fh, nil, err
	}
	if fh.Remaining, _, err = packets.DecodeLength(r.r); err != nil {
		return fh, nil, err
	}
	if cap(r.buf) < fh.Remaining {
		r.buf = make([]byte, fh.Remaining)
	}
	r.buf = r.buf[:fh.Remaining]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return fh, nil, err
	}
	return fh, r.buf, nil
}
