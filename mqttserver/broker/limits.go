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
)

// Limits are the broker's safety limits.
type Limits struct {
	MaxPacketSize    int           // bytes; 0 is no limit
	MaxPendingWrites int           // packets queued for one client
	MinKeepAlive     time.Duration // floor for the keep-alive clients ask for
	MaxClients       int           // connected at once; 0 is no limit
}

// DefaultLimits are the limits when no flag is given.
func DefaultLimits() Limits {
	return Limits{MaxPacketSize: DefaultMaxPacketSize, MaxPendingWrites: DefaultMaxPendingWrites, MinKeepAlive: DefaultMinKeepAlive}
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
	}
	return nil
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
