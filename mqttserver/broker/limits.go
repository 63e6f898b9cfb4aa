package broker

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
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
	// DefaultMaxQueuedBytes bounds what waits for one client (see slowclients.go, queues.go):
	// 100 offline sessions full to it grow the broker by about 200 MB (docs/reliability.md).
	DefaultMaxQueuedBytes = 1 << 20
	// DefaultSlowClientTimeout is how long a client may read nothing of what waits for it.
	DefaultSlowClientTimeout = time.Minute
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
	MaxSessions       int           // sessions kept, connected or not; 0 is no limit
	SessionExpiry     time.Duration // how long a persistent session outlives its connection
}

// DefaultLimits are the limits when no flag is given.
func DefaultLimits() Limits {
	return Limits{MaxPacketSize: DefaultMaxPacketSize, MaxPendingWrites: DefaultMaxPendingWrites, MinKeepAlive: DefaultMinKeepAlive,
		MaxQueuedBytes: DefaultMaxQueuedBytes, SlowClientTimeout: DefaultSlowClientTimeout,
		MaxQueuedMessages: DefaultMaxQueuedMessages, MaxSessions: DefaultMaxSessions, SessionExpiry: DefaultSessionExpiry}
}

// capabilities starts from mochi's defaults and applies the limits.
func (l Limits) capabilities() *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	c.MaximumPacketSize = uint32(l.MaxPacketSize)
	c.MaximumClientWritesPending = int32(l.MaxPendingWrites)
	if l.MaxClients > 0 {
		c.MaximumClients = int64(l.MaxClients)
	}
	return c
}

// check vets limits given as flags or variables.
func (l Limits) check() error {
	switch {
	case l.MaxPacketSize < 0 || l.MaxPacketSize > math.MaxUint32:
		return fmt.Errorf("-max-packet-size %d: want 0 (no limit) to %d bytes", l.MaxPacketSize, uint32(math.MaxUint32))
	case l.MaxPendingWrites < 1 || l.MaxPendingWrites > math.MaxInt32:
		return fmt.Errorf("-max-pending-writes %d: want at least 1", l.MaxPendingWrites)
	case l.MinKeepAlive > math.MaxUint16*time.Second:
		return fmt.Errorf("-min-keepalive %v: MQTT keep-alive is at most %v", l.MinKeepAlive, math.MaxUint16*time.Second)
	case l.MaxClients < 0:
		return fmt.Errorf("-max-clients %d: want 0 (no limit) or more", l.MaxClients)
	case l.MaxQueuedBytes < 1:
		return fmt.Errorf("-max-queued-bytes %d: want at least 1", l.MaxQueuedBytes)
	case l.SlowClientTimeout < 0:
		return fmt.Errorf("-slow-client-timeout %v: want 0 (never) or more", l.SlowClientTimeout)
	}
	return l.checkSessions()
}

// keepAliveHook raises a keep-alive below the floor. mochi has no such capability. MQTT 5
// clients are told the new value in the CONNACK (Server Keep Alive); MQTT 3.1.1 has no way to
// tell them, so the broker only waits longer (1.5 × the floor) before it calls them dead.
// Zero (keep-alive off) is left alone: 3.1.1 clients may rely on it.
type keepAliveHook struct {
	mqtt.HookBase
	floor uint16 // seconds
	log   *slog.Logger
}

func (h *keepAliveHook) ID() string           { return "keepalive-floor" }
func (h *keepAliveHook) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *keepAliveHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if ka := cl.State.Keepalive; ka != 0 && ka < h.floor {
		cl.State.Keepalive = h.floor
		cl.State.ServerKeepalive = true
		h.log.Debug("keep-alive raised to the floor", "client", cl.ID, "asked", ka, "given", h.floor)
	}
	return nil
}

// addLimits installs the keep-alive floor.
func addLimits(server *mqtt.Server, l Limits, log *slog.Logger) error {
	floor := uint16((l.MinKeepAlive + time.Second - 1) / time.Second) // whole seconds, rounded up
	if floor == 0 {
		return nil
	}
	if err := server.AddHook(&keepAliveHook{floor: floor, log: log}, nil); err != nil {
		return fmt.Errorf("add keep-alive hook: %w", err)
	}
	return nil
}
