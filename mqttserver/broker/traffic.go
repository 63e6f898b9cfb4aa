package broker

import (
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// trafficHook counts what mochi counts only in total: the messages and bytes received and sent
// by QoS, the connections refused by reason (the CONNACK's code), the messages mochi drops at a
// full write queue; and it times 1 message in latencySample from its PUBLISH read to each write
// of it to a subscriber. It runs on every PUBLISH in and out: fixed arrays of atomic counters,
// no map, no allocation, and a clock read only for the messages timed.
type trafficHook struct {
	mqtt.HookBase
	received, sent [3]qosCount // by QoS
	refused        [len(refusalReasons)]atomic.Int64
	writeQueueFull atomic.Int64 // messages mochi dropped at -max-pending-writes
	latency        latency
}

// qosCount is one QoS's messages and bytes, a cache line of its own: publishers add to received
// on their goroutines, subscribers' writers to sent on theirs.
type qosCount struct {
	messages, bytes atomic.Int64
	_               [48]byte
}

func newTrafficHook() *trafficHook {
	h := &trafficHook{}
	h.latency.start = time.Now()
	return h
}

func (h *trafficHook) ID() string { return "traffic" }

// Provides is asked for every hook on every event of every packet: a switch. OnPacketRead and
// OnPacketSent are called by mochi for every packet whether or not a hook provides them.
func (h *trafficHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPacketRead, mqtt.OnPacketSent, mqtt.OnPublishDropped:
		return true
	}
	return false
}

// OnPacketRead counts a PUBLISH from a client, and stamps 1 in latencySample.
func (h *trafficHook) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos > 2 {
		return pk, nil
	}
	c := &h.received[pk.FixedHeader.Qos]
	n := c.messages.Add(1)
	c.bytes.Add(int64(wireSize(pk.FixedHeader.Remaining)))
	if n%latencySample == 0 {
		pk.Connect.Keepalive = h.latency.stamp()
	}
	return pk, nil
}

// OnPacketSent counts a PUBLISH written to a client (b is the whole packet), observes the
// latency of a stamped one, and counts a CONNACK that refuses.
func (h *trafficHook) OnPacketSent(_ *mqtt.Client, pk packets.Packet, b []byte) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos > 2 {
			return
		}
		c := &h.sent[pk.FixedHeader.Qos]
		c.messages.Add(1)
		c.bytes.Add(int64(len(b)))
		// A retained message sent to a new subscription was received long before: not timed.
		if pk.Connect.Keepalive != 0 && !pk.FixedHeader.Retain {
			h.latency.observe(pk.Connect.Keepalive)
		}
	case packets.Connack:
		if pk.ReasonCode != 0 {
			h.refused[refusalOf(pk.ProtocolVersion, pk.ReasonCode)].Add(1)
		}
	}
}

// OnPublishDropped: mochi dropped a message for a client whose write queue was full.
func (h *trafficHook) OnPublishDropped(*mqtt.Client, packets.Packet) { h.writeQueueFull.Add(1) }

// wireSize is the size of a packet whose remaining length is remaining: one byte of type and
// flags, one to four of length, and the rest.
func wireSize(remaining int) int {
	size := 1 + remaining
	for {
		size++
		if remaining < 128 {
			return size
		}
		remaining /= 128
	}
}

// qosTraffic is the messages and bytes of each QoS, for /stats.
type qosTraffic struct {
	Messages [3]int64 `json:"messages"`
	Bytes    [3]int64 `json:"bytes"`
}

func snapshotQoS(c *[3]qosCount) qosTraffic {
	var t qosTraffic
	for q := range c {
		t.Messages[q], t.Bytes[q] = c[q].messages.Load(), c[q].bytes.Load()
	}
	return t
}

// refusalReasons are the values of the reason label of refused connections, a closed set: the
// CONNACK's reason code, grouped. MQTT 3.1.1 has five codes: the broker answers a 3.1.1 client
// refused for bad credentials with 5 (not authorised) as Mosquitto does, and a throttled one or
// one past -max-sessions with 3 (server unavailable), so they count as not_authorised and
// server_busy.
var refusalReasons = [...]string{"bad_credentials", "not_authorised", "throttled", "client_id_invalid",
	"server_busy", "protocol_error", "other"}

const (
	refusedBadCredentials = iota
	refusedNotAuthorised
	refusedThrottled
	refusedClientID
	refusedBusy
	refusedProtocol
	refusedOther
)

// refusalOf is the reason index of a CONNACK's code.
func refusalOf(version, code byte) int {
	if version < 5 && code < 0x80 {
		switch code {
		case packets.Err3UnsupportedProtocolVersion.Code:
			return refusedProtocol
		case packets.Err3ClientIdentifierNotValid.Code:
			return refusedClientID
		case packets.Err3ServerUnavailable.Code:
			return refusedBusy
		case packets.ErrMalformedUsernameOrPassword.Code: // mochi's name for 3.1.1's 4, bad user name or password
			return refusedBadCredentials
		case packets.Err3NotAuthorized.Code:
			return refusedNotAuthorised
		}
		return refusedOther
	}
	switch code {
	case packets.ErrBadUsernameOrPassword.Code:
		return refusedBadCredentials
	case packets.ErrNotAuthorized.Code, packets.ErrBanned.Code:
		return refusedNotAuthorised
	case packets.ErrConnectionRateExceeded.Code:
		return refusedThrottled
	case packets.ErrClientIdentifierNotValid.Code:
		return refusedClientID
	case packets.ErrServerUnavailable.Code, packets.ErrServerBusy.Code, packets.ErrQuotaExceeded.Code:
		return refusedBusy
	case packets.ErrMalformedPacket.Code, packets.ErrProtocolViolation.Code, packets.ErrUnsupportedProtocolVersion.Code:
		return refusedProtocol
	}
	return refusedOther
}

// refusals are the connections refused by reason, for /stats.
type refusals map[string]int64

func (h *trafficHook) refusals() refusals {
	r := make(refusals, len(refusalReasons))
	for i, name := range refusalReasons {
		r[name] = h.refused[i].Load()
	}
	return r
}
