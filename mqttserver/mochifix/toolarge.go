package mochifix

import (
	"bytes"
	"context"
	"log/slog"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
)

// A message larger than the client's Maximum Packet Size must be discarded (MQTT-3.1.2-25).
// mochi refuses to write it (WritePacket, clients.go:596) but leaves it in the session: it
// takes a Receive Maximum slot for good, and at every resume the resend fails on it and mochi
// ends the connection ("resend inflight: packet too large", server.go:470), so the messages
// after it never arrive. The Hook discards it before it is written.

// ReasonTooLarge is the reason of the "message dropped" line of such a message.
const ReasonTooLarge = "larger than the client's maximum packet size"

// tooLarge reports whether pk, written to cl, would be larger than the client allows.
// It runs in OnPacketEncode, on the stack of every write: the packet is taken by pointer and
// copied only when it may be too large (encodedTooLarge), so that a connection's write loop
// fits in 8 KiB of stack, not 16 (TestWriteLoopStack).
func tooLarge(cl *mqtt.Client, pk *packets.Packet) bool {
	limit := cl.Properties.Props.MaximumPacketSize
	if limit == 0 || pk.FixedHeader.Type != packets.Publish || sizeBound(pk) <= int(limit) {
		return false
	}
	return encodedTooLarge(cl, pk, limit)
}

// encodedTooLarge encodes a copy of pk as WritePacket does and compares its size with limit.
//
//go:noinline
func encodedTooLarge(cl *mqtt.Client, p *packets.Packet, limit uint32) bool {
	pk := *p
	pk.ProtocolVersion = cl.Properties.ProtocolVersion
	pk.Mods.MaxSize = limit
	if pk.Expiry > 0 {
		pk.Properties.MessageExpiryInterval = 1 // four bytes whatever the value
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return false // mochi will not send it either, and says why
	}
	return buf.Len() > int(limit)
}

// sizeBound is at least the encoded size of the PUBLISH pk, cheaply.
func sizeBound(pk *packets.Packet) int {
	p := &pk.Properties
	n := 1 + 4 + 2 + len(pk.TopicName) + 2 + len(pk.Payload) + 4 // header, topic, id, properties' length
	n += 64 + len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData) + 5*len(p.SubscriptionIdentifier)
	for _, u := range p.User {
		n += 5 + len(u.Key) + len(u.Val)
	}
	return n
}

// TooLarge counts the messages discarded as too large for their client since the start.
func (h *Hook) TooLarge() int64 { return h.tooLarge.Load() }

// discard takes a message too large for the client out of its session, counts and logs it
// (capped).
func (h *Hook) discard(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Qos > 0 && cl.State.Inflight.Delete(pk.PacketID) {
		atomic.AddInt64(&h.server.Info.Inflight, -1)
		if h.Dropped != nil {
			h.Dropped(cl, *pk)
		}
	}
	h.tooLarge.Add(1)
	atomic.AddInt64(&h.server.Info.MessagesDropped, 1)
	if h.tooLargeLines.Allow() {
		h.log.LogAttrs(context.Background(), slog.LevelWarn, eventlog.MsgDropped, slog.String("client", cl.ID),
			slog.String("topic", pk.TopicName), slog.String("reason", ReasonTooLarge),
			slog.Uint64("max_packet_size", uint64(cl.Properties.Props.MaximumPacketSize)))
	}
}
