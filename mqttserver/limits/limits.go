// Package limits bounds what one client can make the broker hold or do: the packet size and
// keep-alive floor (limits.go), the messages and bytes queued to a session and the number of
// sessions (queues.go), the retained messages (retained.go), how long messages are kept
// (expiry.go), and the connection layer that
// keeps a client that stops reading from stalling its publishers (slowclients.go). Seeing
// every packet on the way, it also counts the traffic by QoS and times deliveries (traffic.go,
// latency.go). It logs through the event log's vocabulary and knows nothing of access control,
// storage or the listeners it wraps.
package limits

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/shared/config"
)

// Defaults of the safety limits.
const (
	// DefaultMaxPacketSize refuses packets over 1 MiB: far above what the demo sends, small
	// enough that one client cannot make the broker hold hundreds of megabytes.
	DefaultMaxPacketSize = 1 << 20
	// DefaultMaxPendingWrites is the queue of packets waiting to be written to one client,
	// mochi's own default. The queue is a channel made at connect, 8 bytes a slot; above 4096
	// slots (32 KiB) it is a run of pages the OS maps only when used, so an idle connection
	// holds less than with 1024 slots, which are touched at once (26.9 KB against 30.5 KB per
	// idle connection in BENCHMARKS.md). A slow subscriber may make the broker queue this many
	// messages before copies to it are dropped, QoS 1 and 2 included (mochi rolls them back).
	DefaultMaxPendingWrites = 8192
	// DefaultMinKeepAlive is the keep-alive floor: a client asking for less gets this.
	DefaultMinKeepAlive = 5 * time.Second
	// DefaultMaxQueuedBytes bounds what waits for one client (see slowclients.go and queues.go):
	// 100 offline sessions full to it grow the broker by about 200 MB (docs/reliability.md).
	DefaultMaxQueuedBytes = 1 << 20
	// DefaultSlowClientTimeout is how long a client may read nothing of what waits for it.
	DefaultSlowClientTimeout = time.Minute
	// DefaultMaxTopicAliases is the Topic Alias Maximum told to MQTT 5 clients, Mosquitto's:
	// each alias holds a topic of up to 64 KiB, so 10 hold at most 640 KiB per connection
	// (mochi's 65,535 let one connection pin gigabytes).
	DefaultMaxTopicAliases = 10
)

// Limits are the broker's safety limits.
type Limits struct {
	MaxPacketSize    int           // bytes; 0 is no limit
	MaxPendingWrites int           // packets queued for one client
	MinKeepAlive     time.Duration // floor for the keep-alive clients ask for
	MaxClients       int           // connected at once; 0 is no limit
	// MaxQueuedBytes: unsent bytes a connected client may have waiting (QoS 0 messages are
	// dropped past half of it, the client disconnected past it).
	MaxQueuedBytes int
	// SlowClientTimeout: a client that takes none of the bytes waiting for it this long is
	// disconnected; 0 is never.
	SlowClientTimeout time.Duration
	// Session limits, see queues.go.
	MaxQueuedMessages int           // QoS 1 and 2 messages one session holds unacknowledged
	MaxQueuedTotal    int           // bytes queued to all offline sessions together
	MaxSessions       int           // sessions kept, connected or not; 0 is no limit
	SessionExpiry     time.Duration // how long a persistent session outlives its connection
	// Retained-message limits, see retained.go; 0 is no limit.
	MaxRetained      int // retained messages kept
	MaxRetainedBytes int // bytes of their topics and payloads
	// MaxMessageExpiry: retained and queued messages older than this are dropped (expiry.go);
	// 0 keeps them until replaced, cleared, acknowledged or their session ends.
	MaxMessageExpiry time.Duration
	// MaxTopicAliases: the Topic Alias Maximum told to MQTT 5 clients; 0 is no aliases.
	MaxTopicAliases int
	// MaxTopicAliasBytes: bytes of the topics one connection's aliases hold (aliases.go); 0 is
	// no limit.
	MaxTopicAliasBytes int
	// Subscription limits, see subscriptions.go; 0 is no limit.
	MaxSubscriptions int // filters one session holds
	MaxFilterLength  int // bytes of one filter
	MaxFilterLevels  int // levels of one filter
}

// DefaultLimits are the limits when no flag is given.
func DefaultLimits() Limits {
	return Limits{MaxPacketSize: DefaultMaxPacketSize, MaxPendingWrites: DefaultMaxPendingWrites, MinKeepAlive: DefaultMinKeepAlive,
		MaxQueuedBytes: DefaultMaxQueuedBytes, SlowClientTimeout: DefaultSlowClientTimeout,
		MaxQueuedMessages: DefaultMaxQueuedMessages, MaxQueuedTotal: DefaultMaxQueuedTotal, MaxSessions: DefaultMaxSessions,
		SessionExpiry: DefaultSessionExpiry, MaxRetained: DefaultMaxRetained, MaxRetainedBytes: DefaultMaxRetainedBytes,
		MaxTopicAliases: DefaultMaxTopicAliases, MaxTopicAliasBytes: DefaultMaxTopicAliasBytes, MaxSubscriptions: DefaultMaxSubscriptions, MaxFilterLength: DefaultMaxFilterLength,
		MaxFilterLevels: DefaultMaxFilterLevels}
}

// Capabilities starts from mochi's defaults and applies the limits.
func (l Limits) Capabilities() *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	c.MaximumPacketSize = uint32(l.MaxPacketSize)
	c.MaximumClientWritesPending = int32(l.MaxPendingWrites)
	if l.MaxClients > 0 {
		c.MaximumClients = int64(l.MaxClients)
	}
	// mochi copies a PUBLISH's user properties into its PUBACK/PUBREC; MQTT 5 does not ask
	// for that, and the Eclipse paho MQTT 5 test client rejects such acks.
	c.Compatibilities.NoInheritedPropertiesOnAck = true
	c.MaximumInflight = uint16(l.MaxQueuedMessages)
	c.MaximumSessionExpiryInterval = uint32(l.SessionExpiry / time.Second)
	// mochi's one-day default deleted retained and queued messages a day old and was forwarded
	// as the expiry of every message that had none; with 0 it keeps them and forwards only what
	// a publisher set. An operator's cap is applied by ExpiryHook (expiry.go), not here.
	c.MaximumMessageExpiryInterval = 0
	// mochi refuses an alias over it (DISCONNECT 0x94) but never tells it in the CONNACK:
	// limitsHook.OnPacketEncode does.
	c.TopicAliasMaximum = uint16(l.MaxTopicAliases)
	return c
}

// check vets limits given as flags or variables.
func (l Limits) Check() error {
	switch {
	case l.MaxPacketSize < 0 || l.MaxPacketSize > math.MaxUint32:
		return &config.BadValue{Flag: "max-packet-size", Why: fmt.Sprintf("want 0 (no limit) to %d bytes", uint32(math.MaxUint32))}
	case l.MaxPendingWrites < 1 || l.MaxPendingWrites > math.MaxInt32:
		return &config.BadValue{Flag: "max-pending-writes", Why: "want at least 1"}
	case l.MinKeepAlive > math.MaxUint16*time.Second:
		return &config.BadValue{Flag: "min-keepalive", Why: fmt.Sprintf("MQTT keep-alive is at most %v", math.MaxUint16*time.Second)}
	case l.MaxClients < 0:
		return &config.BadValue{Flag: "max-clients", Why: "want 0 (no limit) or more"}
	case l.MaxQueuedBytes < 1:
		return &config.BadValue{Flag: "max-queued-bytes", Why: "want at least 1"}
	case l.SlowClientTimeout < 0:
		return &config.BadValue{Flag: "slow-client-timeout", Why: "want 0 (never) or more"}
	case l.MaxMessageExpiry < 0:
		return &config.BadValue{Flag: "max-message-expiry", Why: "want 0 (no cap) or more"}
	case l.MaxTopicAliases < 0 || l.MaxTopicAliases > math.MaxUint16:
		return &config.BadValue{Flag: "max-topic-aliases", Why: fmt.Sprintf("want 0 (none) to %d", math.MaxUint16)}
	case l.MaxTopicAliasBytes < 0:
		return &config.BadValue{Flag: "max-topic-alias-bytes", Why: "want 0 (no limit) or more"}
	case l.MaxSubscriptions < 0:
		return &config.BadValue{Flag: "max-subscriptions", Why: "want 0 (no limit) or more"}
	case l.MaxFilterLength < 0:
		return &config.BadValue{Flag: "max-filter-length", Why: "want 0 (no limit) or more"}
	case l.MaxFilterLevels < 0:
		return &config.BadValue{Flag: "max-filter-levels", Why: "want 0 (no limit) or more"}
	}
	if err := l.checkRetained(); err != nil {
		return err
	}
	return l.checkSessions()
}

// limitsHook applies the limits mochi has no capability for, or gets wrong.
//
// The keep-alive floor: a keep-alive below it is raised. MQTT 5 clients are told the new value
// in the CONNACK (Server Keep Alive); MQTT 3.1.1 has no way to tell them, so the broker only
// waits longer (1.5 × the floor) before it calls them dead. Zero (keep-alive off) is left
// alone: 3.1.1 clients may rely on it.
//
// The CONNACK: mochi tells an MQTT 5 client its Receive Maximum but neither the Maximum Packet
// Size nor the Topic Alias Maximum it enforces, so clients send packets it refuses and never
// use aliases.
//
// The packet size: mochi compares the remaining length plus one with its maximum, so packets
// up to four bytes over it get through; MQTT 5 counts the whole packet, fixed header included.
//
// Protocol errors mochi lets through end the connection (protocol.go), and so does a topic
// alias past -max-topic-alias-bytes (aliases.go).
//
// The traffic (traffic.go): it counts the PUBLISH packets read and the messages mochi drops at
// a full write queue, and tags the messages timed.
//
// The broker's own topic aliases: mochi gives a client as many as its CONNECT's Topic Alias
// Maximum asks for (up to 65,535), each holding the topic of a message it was sent, for the
// life of the connection. The broker assigns none, as Mosquitto 2.0.11 does.
type limitsHook struct {
	mqtt.HookBase
	server      *mqtt.Server
	floor       uint16 // seconds; 0 is no floor
	maxSize     int    // bytes; 0 is no limit
	aliases     uint16 // Topic Alias Maximum
	aliasBudget *AliasBudget
	traffic     *Traffic
	log         *slog.Logger
}

func (h *limitsHook) ID() string { return "limits" }

// Provides is asked for every hook on every event of every packet: a switch.
func (h *limitsHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnDisconnect, mqtt.OnPublishDropped:
		return true
	}
	return false
}

func (h *limitsHook) Init(any) error {
	h.aliasBudget.start()
	return nil
}

func (h *limitsHook) Stop() error {
	h.aliasBudget.close()
	return nil
}

func (h *limitsHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	// Before the client is registered: no publisher has seen its table yet.
	cl.State.TopicAliases.Outbound = mqtt.NewOutboundTopicAliases(0)
	if ka := cl.State.Keepalive; ka != 0 && ka < h.floor {
		cl.State.Keepalive = h.floor
		cl.State.ServerKeepalive = true
		h.log.Debug("keep-alive raised to the floor", "client", cl.ID, "asked", ka, "given", h.floor)
	}
	return nil
}

// OnPacketEncode tells an MQTT 5 client the limits in the CONNACK that accepts it, and the
// connection the timed copy it is about to write (latency.go).
func (h *limitsHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish {
		if pk.Connect.Keepalive != 0 {
			expect(cl, &pk)
		}
		return pk
	}
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < packets.ErrUnspecifiedError.Code && cl.Properties.ProtocolVersion == 5 {
		pk.Properties.MaximumPacketSize = uint32(h.maxSize) // 0, no limit, is not sent
		pk.Properties.TopicAliasMaximum = h.aliases         // 0, none, is not sent: absent is 0
	}
	return pk
}

// OnPacketRead counts a PUBLISH and tags 1 in LatencySample (traffic.go); gives a one-byte
// DISCONNECT its reason code; refuses a packet over the size limit, and the protocol errors of
// protocol.go (an MQTT 5 client is told the reason code, then mochi closes the connection);
// names the topic of a PUBLISH by alias; answers a PUBLISH to $SYS, which mochi drops.
func (h *limitsHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish {
		if tag := h.traffic.read(&pk); tag != 0 {
			pk.Connect.Keepalive = tag
		}
	}
	if pk.FixedHeader.Type == packets.Disconnect && pk.FixedHeader.Remaining == 1 {
		pk.ReasonCode = disconnectReason(cl, pk.ReasonCode)
	}
	if size := packetSize(pk.FixedHeader.Remaining); h.maxSize > 0 && size > h.maxSize {
		refuse(h.server, cl, packets.ErrPacketTooLarge)
		return pk, tooLarge{size: size, limit: h.maxSize}
	}
	if err := checkPacket(cl, pk, h.aliases); err != nil {
		refuse(h.server, cl, err.(violation).code)
		h.log.Debug("protocol error", "client", cl.ID, "error", err)
		return pk, err
	}
	withAliasTopic(cl, &pk, h.aliases)
	if err := h.aliasBudget.take(cl, pk, h.aliases); err != nil {
		refuse(h.server, cl, err.(violation).code)
		return pk, err
	}
	answerSysPublish(cl, pk)
	return pk, nil
}

// disconnectReason is the reason code of the client's one-byte DISCONNECT as the connection
// layer read it (packetwatch.go), or what mochi decoded.
func disconnectReason(cl *mqtt.Client, decoded byte) byte {
	if c, ok := cl.Net.Conn.(*flowConn); ok {
		if r, ok := c.sizes.disconnectReason(); ok {
			return r
		}
	}
	return decoded
}

func (h *limitsHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.aliasBudget.forget(cl) }

// OnPublishDropped: mochi dropped a message for a client whose write queue was full.
func (h *limitsHook) OnPublishDropped(*mqtt.Client, packets.Packet) { h.traffic.writeQueueFull.Add(1) }

// packetSize is the size of a whole packet whose remaining length is remaining: one byte of
// type and flags, one to four of length, and the rest.
func packetSize(remaining int) int {
	size := 1 + remaining
	for {
		size++
		if remaining < 128 {
			return size
		}
		remaining /= 128
	}
}

// tooLarge is the error of a packet over -max-packet-size; it is mochi's ErrPacketTooLarge, and
// ErrRejectPacket, the one error of OnPacketRead that mochi does not ignore.
type tooLarge struct{ size, limit int }

func (e tooLarge) Error() string {
	return fmt.Sprintf("packet of %d bytes is over -max-packet-size %d", e.size, e.limit)
}

func (e tooLarge) Is(target error) bool {
	return target == packets.ErrPacketTooLarge || target == packets.ErrRejectPacket
}

// AddPacketLimits installs the keep-alive floor, the limits told in the CONNACK, the exact
// packet size check, the protocol checks and the topic alias bytes, and counts in traffic what
// it reads; the AliasBudget counts the connections it ended.
func AddPacketLimits(server *mqtt.Server, l Limits, traffic *Traffic, log *slog.Logger) (*AliasBudget, error) {
	h := &limitsHook{server: server, floor: uint16((l.MinKeepAlive + time.Second - 1) / time.Second), // whole seconds, rounded up
		maxSize: l.MaxPacketSize, aliases: uint16(l.MaxTopicAliases), aliasBudget: newAliasBudget(l.MaxTopicAliasBytes, log),
		traffic: traffic, log: log}
	if err := server.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("add limits hook: %w", err)
	}
	return h.aliasBudget, nil
}
