package broker

import (
	"bytes"
	"context"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

const msgDropped = "message dropped"

// dropsHook logs the messages the broker drops for a subscriber that does not keep up (its
// queue of pending writes is full; mochi counts them in $SYS/broker/messages/dropped). A slow
// consumer can lose thousands a second, so it logs the 1st, 10th, 100th, … drop of a client and
// the total when the client goes.
type dropsHook struct {
	mqtt.HookBase
	log *slog.Logger
	mu  sync.Mutex
	n   map[string]int // drops per client id
}

func newDropsHook(log *slog.Logger) *dropsHook { return &dropsHook{log: log, n: map[string]int{}} }

func (h *dropsHook) ID() string { return "drops" }

func (h *dropsHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublishDropped, mqtt.OnDisconnect}, []byte{b})
}

func (h *dropsHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	h.n[cl.ID]++
	n := h.n[cl.ID]
	h.mu.Unlock()
	if !isPowerOf10(n) {
		return
	}
	h.log.LogAttrs(context.Background(), slog.LevelWarn, msgDropped,
		slog.String("client", cl.ID),
		slog.String("topic", pk.TopicName),
		slog.String("reason", "client-queue-full"),
		slog.Int("dropped", n),
	)
}

func (h *dropsHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	n := h.n[cl.ID]
	delete(h.n, cl.ID)
	h.mu.Unlock()
	if n > 0 {
		h.log.LogAttrs(context.Background(), slog.LevelWarn, "messages dropped for a slow client",
			slog.String("client", cl.ID), slog.Int("dropped", n))
	}
}

func isPowerOf10(n int) bool {
	for n >= 10 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}
