package access

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
)

// heldWills are the MQTT 5 wills mochi holds back for their Will Delay Interval after their
// connection closed, by client id. mochi keeps them where no hook reaches (server.go:1541) and
// publishes them without asking any hook (sendDelayedLWT, server.go:1745), so a reload that
// removes a user must withdraw its will itself: it learns of each from OnWill, called as mochi
// holds it back.
type heldWills struct {
	mu      sync.Mutex
	byID    map[string]heldWill
	pruneAt int
}

// heldWill is a will held back, with what the rules need to judge it.
type heldWill struct {
	cl    *mqtt.Client
	user  string
	topic string
	due   time.Time
}

// heldLate is how long past its due time a held will is still remembered: mochi publishes it at
// its next one-second tick after that, later when busy. A will remembered after it went out costs
// a DISCONNECT injected for nothing.
const heldLate = time.Minute

func (w *heldWills) hold(cl *mqtt.Client, will mqtt.Will) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byID == nil {
		w.byID = make(map[string]heldWill)
	}
	w.byID[cl.ID] = heldWill{cl: cl, user: string(cl.Properties.Username), topic: will.TopicName,
		due: now.Add(time.Duration(will.WillDelayInterval) * time.Second)}
	if len(w.byID) >= max(w.pruneAt, minPrune) {
		// OnWillSent does not come for a will whose session has ended (mochi publishes it all
		// the same): those are forgotten here.
		for id, h := range w.byID {
			if now.After(h.due.Add(heldLate)) {
				delete(w.byID, id)
			}
		}
		w.pruneAt = 2 * len(w.byID)
	}
}

// forget drops the will held for id: it was sent, or mochi dropped it as a connection with the id
// came. With cl, only if it is cl's.
func (w *heldWills) forget(id string, cl *mqtt.Client) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h, ok := w.byID[id]; ok && (cl == nil || h.cl == cl) {
		delete(w.byID, id)
	}
}

// take removes and returns the held wills that allowed no longer lets out.
func (w *heldWills) take(allowed func(heldWill) bool) []heldWill {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []heldWill
	for id, h := range w.byID {
		switch {
		case now.After(h.due.Add(heldLate)):
			delete(w.byID, id)
		case !allowed(h):
			delete(w.byID, id)
			out = append(out, h)
		}
	}
	return out
}

// OnWill notes a will that mochi holds back for its delay; the will is not changed.
func (h *Hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if will.WillDelayInterval > 0 {
		h.wills.hold(cl, will)
	}
	return will, nil
}

func (h *Hook) OnWillSent(cl *mqtt.Client, _ packets.Packet) { h.wills.forget(cl.ID, cl) }

// withdrawHeldWills withdraws the held wills that users no longer allow. The client's
// connection is closed; for mochi, a DISCONNECT from it withdraws its will ([MQTT-3.1.2-8];
// processDisconnect, server.go:1407), and does nothing else to a closed connection: mochi's own
// way, through its public InjectPacket.
func (h *Hook) withdrawHeldWills(users *Users) {
	withdrawn := h.wills.take(func(w heldWill) bool { return h.allows(users, []byte(w.user), w.topic, true) })
	for _, w := range withdrawn {
		err := h.server.InjectPacket(w.cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
		if err != nil {
			h.log.Error("held will not withdrawn", "client", w.cl.ID, "topic", w.topic, "error", err)
			continue
		}
		reason := "may no longer publish to the will topic"
		if users.rules([]byte(w.user)) == nil {
			reason = "user no longer in the auth file"
		}
		h.log.Info(eventlog.MsgWillWithdrawn, "client", w.cl.ID, "username", w.user, "topic", w.topic, "reason", reason)
	}
}
