package limits

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/shared/config"
)

// Why this file: mochi keeps every retained message it is given, and once a second its event
// loop copies the whole retained map to look for expired ones (clearExpiredRetainedMessages,
// server.go:1710; Packets.GetAll copies 800 bytes a message): 100,000 retained topics and
// nobody connected cost 481 MB and 29% of a core for ever. The sweep runs on a ticker of
// mochi's own, whatever the options, and the retained messages must be in that map for mochi
// to give them to new subscribers, so the sweep cannot be skipped through mochi's API. What can
// be bounded is what it copies: the number of retained messages (-max-retained) and their
// bytes (-max-retained-bytes). Past either, a new retained message is still delivered to the
// subscribers of the moment but not retained, counted as dropped and logged.

// Defaults of the retained-message limits.
const (
	// DefaultMaxRetained keeps mochi's sweep of the retained messages, once a second, to a few
	// percent of a core on a small machine (docs/server.md has the figures).
	DefaultMaxRetained = 1_000
	// DefaultMaxRetainedBytes bounds the payloads and topics of the retained messages.
	DefaultMaxRetainedBytes = 64 << 20
)

// ReasonRetainedFull is the reason in the lines of a retained message not kept.
const ReasonRetainedFull = "retained messages full (-max-retained, -max-retained-bytes): delivered, not retained"

func (l Limits) checkRetained() error {
	switch {
	case l.MaxRetained < 0:
		return &config.BadValue{Flag: "max-retained", Why: "want 0 (no limit) or more"}
	case l.MaxRetainedBytes < 0:
		return &config.BadValue{Flag: "max-retained-bytes", Why: "want 0 (no limit) or more"}
	}
	return nil
}

// retainedCost is what a retained message counts against -max-retained-bytes.
func retainedCost(topic string, payload []byte) int { return len(topic) + len(payload) }

// RetainedHook refuses to retain a message past -max-retained or -max-retained-bytes. It
// knows the retained messages by the hooks mochi calls when it keeps or removes one, and by
// Recount for those loaded from the data file.
type RetainedHook struct {
	mqtt.HookBase
	server   *mqtt.Server
	log      *slog.Logger
	maxCount int // 0 is no limit
	maxBytes int // 0 is no limit
	refused  *eventlog.LineCap
	lost     atomic.Int64 // messages not retained, since the start

	mu    sync.Mutex
	sizes map[string]int // topic → the cost of its retained message
	bytes int            // the sum of sizes
}

// NewRetainedHook returns the hook of l's retained-message limits, or nil when there are none.
func NewRetainedHook(server *mqtt.Server, l Limits, log *slog.Logger) *RetainedHook {
	if l.MaxRetained == 0 && l.MaxRetainedBytes == 0 {
		return nil
	}
	return &RetainedHook{server: server, log: log, maxCount: l.MaxRetained, maxBytes: l.MaxRetainedBytes,
		refused: eventlog.NewLineCap(log, slog.LevelWarn, eventlog.MsgDropped, slog.String("reason", ReasonRetainedFull)),
		sizes:   make(map[string]int)}
}

func (h *RetainedHook) ID() string { return "retained-limits" }

func (h *RetainedHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnRetainMessage || b == mqtt.OnRetainedExpired || b == mqtt.OnWill
}

func (h *RetainedHook) Init(any) error {
	h.refused.Start()
	return nil
}

func (h *RetainedHook) Stop() error {
	h.refused.Close()
	return nil
}

// Recount learns the retained messages mochi holds (those loaded from the data file, which
// mochi retains without calling a hook); the broker calls it once, after Serve. mochi's own
// $SYS topics do not count.
func (h *RetainedHook) Recount() {
	all := h.server.Topics.Retained.GetAll()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sizes, h.bytes = make(map[string]int, len(all)), 0
	for topic, pk := range all {
		if !strings.HasPrefix(topic, mqtt.SysPrefix) {
			h.set(topic, pk.Payload)
		}
	}
}

// OnPublish takes the retain flag off a message that would take the retained messages past a
// limit: mochi then delivers it to the subscribers of the moment and does not keep it. A
// message that replaces one on its topic counts only what it adds; one that clears a topic is
// always let through.
func (h *RetainedHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && len(pk.Payload) > 0 && h.refuse(cl, pk.TopicName, pk.Payload) {
		pk.FixedHeader.Retain = false
	}
	return pk, nil
}

// OnWill does the same for a will to be retained: mochi publishes wills without OnPublish.
func (h *RetainedHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if will.Retain && len(will.Payload) > 0 && h.refuse(cl, will.TopicName, will.Payload) {
		will.Retain = false
	}
	return will, nil
}

// Lost counts the messages not retained past the limits since the start; 0 for a nil hook
// (no limits).
func (h *RetainedHook) Lost() int64 {
	if h == nil {
		return 0
	}
	return h.lost.Load()
}

// refuse reports whether a retained message would take the retained messages past a limit,
// and counts and logs the refusal.
func (h *RetainedHook) refuse(cl *mqtt.Client, topic string, payload []byte) bool {
	cost := retainedCost(topic, payload)
	h.mu.Lock()
	old, replaces := h.sizes[topic]
	full := h.maxCount > 0 && !replaces && len(h.sizes) >= h.maxCount ||
		h.maxBytes > 0 && h.bytes-old+cost > h.maxBytes
	h.mu.Unlock()
	if !full {
		return false
	}
	h.lost.Add(1)
	atomic.AddInt64(&h.server.Info.MessagesDropped, 1)
	if h.refused.Allow() {
		h.log.LogAttrs(context.Background(), slog.LevelWarn, eventlog.MsgDropped, slog.String("client", cl.ID),
			slog.String("topic", topic), slog.String("reason", ReasonRetainedFull),
			slog.String("retained", h.usage()))
	}
	return true
}

// usage is how full the retained messages are, for the log line.
func (h *RetainedHook) usage() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("%d of %d messages, %d of %d bytes", len(h.sizes), h.maxCount, h.bytes, h.maxBytes)
}

// OnRetainMessage: mochi has kept, replaced or cleared the retained message of pk's topic.
func (h *RetainedHook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, _ int64) {
	h.mu.Lock()
	h.set(pk.TopicName, pk.Payload)
	h.mu.Unlock()
}

// OnRetainedExpired: mochi's sweep, or the expiry hook (Forget), removed a retained message.
func (h *RetainedHook) OnRetainedExpired(topic string) { h.Forget(topic) }

// Forget is told of a retained message removed by another hook.
func (h *RetainedHook) Forget(topic string) {
	h.mu.Lock()
	h.set(topic, nil)
	h.mu.Unlock()
}

// set records topic's retained payload (none: cleared); h.mu is held.
func (h *RetainedHook) set(topic string, payload []byte) {
	h.bytes -= h.sizes[topic]
	if len(payload) == 0 {
		delete(h.sizes, topic)
		return
	}
	h.sizes[topic] = retainedCost(topic, payload)
	h.bytes += h.sizes[topic]
}
