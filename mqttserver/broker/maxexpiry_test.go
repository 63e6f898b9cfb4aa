package broker

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
)

// TestMaxMessageExpiry: with -max-message-expiry, retained and queued messages older than it are
// dropped, counted in $SYS (messages dropped) and summed up in the log; the cap is not
// forwarded as an expiry.
func TestMaxMessageExpiry(t *testing.T) {
	for _, data := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "data"}[data], func(t *testing.T) {
			lim := limits.DefaultLimits()
			lim.MaxMessageExpiry = time.Second
			cfg := Config{Limits: lim}
			if data {
				cfg.DataDir = t.TempDir()
			}
			b, logs := startBroker(t, cfg)
			offlineSession(t, b, "capped", "cap/#")
			live := dialV5(t, b.Addr(), "live", true, 0)
			rawExchange(t, live, subscribeV5("cap/#"), 0x90, 1)

			pub := dialV5(t, b.Addr(), "pub5", true, 0)
			publishV5(t, pub, 1, "cap/retained", "r", true, 0)
			publishV5(t, pub, 2, "cap/queued", "q", false, 0)
			got := readV5Until(t, live, "cap/queued")
			if mei := got["cap/retained"].Properties.MessageExpiryInterval; mei != 0 {
				t.Errorf("the cap was forwarded as an expiry of %d s", mei)
			}

			// The retained message, and the two copies queued to the offline session.
			waitFor(t, "the summary of 3 dropped messages", func() bool { return droppedByCap(t, logs) >= 3 })
			if n := droppedByCap(t, logs); n != 3 {
				t.Errorf("dropped by the cap: %d, want 3", n)
			}
			if n := atomic.LoadInt64(&b.server.Info.MessagesDropped); n != 3 {
				t.Errorf("$SYS messages dropped = %d, want 3", n)
			}
			if cl, _ := b.server.Clients.Get("capped"); cl.State.Inflight.Len() != 0 {
				t.Errorf("the offline session still holds %d messages", cl.State.Inflight.Len())
			}

			again := dialV5(t, b.Addr(), "capped", false, 300)
			fresh := dialV5(t, b.Addr(), "fresh", true, 0)
			rawExchange(t, fresh, subscribeV5("cap/#"), 0x90, 1)
			publishV5(t, pub, 3, "cap/zz-end", "end", false, 0)
			for name, conn := range map[string]net.Conn{"the resumed session": again, "a new subscriber": fresh} {
				if got := readV5Until(t, conn, "cap/zz-end"); len(got) != 1 {
					t.Errorf("%s got %v, want only the marker", name, slices.Sorted(maps.Keys(got)))
				}
			}
			if data { // the session's client and subscription; the marker, once acknowledged, is deleted
				waitFor(t, "the data file to hold the session only", func() bool { return len(keys(t, b.data)) == 2 })
			}
		})
	}
}

// droppedByCap sums the counts of the log's summaries of messages dropped by the cap.
func droppedByCap(t *testing.T, logs *logBuffer) int {
	n := 0
	for _, r := range logs.records(t) {
		if r["msg"] == eventlog.MsgDropped && r["reason"] == limits.ReasonMaxExpiry {
			c, err := strconv.Atoi(fmt.Sprint(r["count"]))
			if err != nil {
				t.Fatalf("summary without a count: %v", r)
			}
			n += c
		}
	}
	return n
}
