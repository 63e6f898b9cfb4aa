package broker

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
)

// TestOfflineQueuesTotalLimit: all offline sessions together keep what fits in
// -max-queued-total; past it, copies to them are dropped, counted in $SYS and logged. The
// copies kept of one message share its payload.
func TestOfflineQueuesTotalLimit(t *testing.T) {
	const sessions, count, size = 4, 5, 1000
	cost := size + len("q/t") + limits.QueuedOverhead
	lim := limits.DefaultLimits()
	lim.MaxQueuedTotal = 10 * cost // two sessions' worth of the five messages
	b, logs := startBroker(t, Config{Limits: lim})
	for i := range sessions {
		offlineSession(t, b, fmt.Sprint("s", i), "q/#")
	}
	pub := connect(t, clientOpts(b.Addr(), "pub"))
	pad := strings.Repeat("x", size-2)
	publishEach(t, pub, count, func(i int) string { return fmt.Sprintf("%d %s", i, pad) })
	const dropped = sessions*count - 10
	waitFor(t, "the drops counted", func() bool { return atomic.LoadInt64(&b.server.Info.MessagesDropped) >= dropped })
	if n := atomic.LoadInt64(&b.server.Info.MessagesDropped); n != dropped {
		t.Errorf("$SYS dropped %d, want %d", n, dropped)
	}
	if !logs.has(t, eventlog.MsgDropped, map[string]any{"topic": "q/t", "reason": limits.ReasonTotalBytes}) {
		t.Error("no message dropped line for -max-queued-total")
	}
	payloads := map[string]*byte{}
	kept := 0
	for i := range sessions {
		cl, _ := b.server.Clients.Get(fmt.Sprint("s", i))
		for _, pk := range cl.State.Inflight.GetAll(false) {
			kept++
			p := &pk.Payload[0]
			if first, ok := payloads[string(pk.Payload)]; ok && first != p {
				t.Errorf("s%d holds its own copy of %.1q", i, pk.Payload)
			}
			payloads[string(pk.Payload)] = p
		}
	}
	if kept != 10 {
		t.Errorf("the offline sessions hold %d messages, want 10", kept)
	}
}
