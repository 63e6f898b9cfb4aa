package access

// Canaries: each test shows one mochi v2.7.9 flaw that the access hook mends (mochifix/doc.go,
// "Access") on bare mochi, and fails once mochi no longer shows it, so that the mend can go.

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/internal/bare"
	"mqttdemo/mqttserver/rawmqtt"
)

// TestCanaryAnyHookYesWins: a hook that denies is overruled by any hook that allows, and a hook
// that denies a connection can only have mochi answer "bad user name or password".
func TestCanaryAnyHookYesWins(t *testing.T) {
	deny := &recorder{deny: true}
	_, addr := bare.Serve(t, nil, deny)
	conn := bare.Dial(t, addr, rawmqtt.Connect{ID: "denied", Clean: true})
	accepted := bare.Read(t, conn)[3] == 0

	addr = bare.Listen(t, bare.New(t, nil, &recorder{deny: true})) // the denying hook alone
	conn = bare.Dial(t, addr, rawmqtt.Connect{ID: "denied", Version: 5, Clean: true})
	reason := bare.Read(t, conn)[3]
	if !accepted || reason != packets.ErrBadUsernameOrPassword.Code {
		t.Fatalf("mochi no longer shows any hook's yes winning (accepted despite a denying hook: %v; "+
			"the only refusal: %#x): the mend in access/hook.go may go (see doc.go)", accepted, reason)
	}
}

// TestCanaryWillsUnchecked: mochi accepts a will topic with wildcards, and publishes a will
// without a write check of its topic.
func TestCanaryWillsUnchecked(t *testing.T) {
	rec := new(recorder)
	_, addr := bare.Serve(t, nil, rec)
	wild := bare.Dial(t, addr, rawmqtt.Connect{ID: "wild", Clean: true, WillTopic: "w/#", WillPayload: []byte("x")})
	wildAccepted := bare.Read(t, wild)[3] == 0

	sub := bare.Connect(t, addr, rawmqtt.Connect{ID: "sub", Clean: true})
	bare.Exchange(t, sub, rawmqtt.Subscribe(1, "w/+", 0), 0x90)
	willing := bare.Connect(t, addr, rawmqtt.Connect{ID: "willing", Clean: true, WillTopic: "w/t", WillPayload: []byte("gone")})
	willing.Close() // without DISCONNECT: the will goes out
	bare.ReadUntil(t, sub, "gone")
	if !wildAccepted || slices.Contains(rec.list(), "willing write w/t") {
		t.Fatalf("mochi no longer shows wills unchecked (wildcard will accepted: %v; checks %q): "+
			"the mend in access/hook.go (OnConnect) may go (see doc.go)", wildAccepted, rec.list())
	}
}

// TestCanaryOnWillCannotCancel: a will whose OnWill returns an error is published all the same.
func TestCanaryOnWillCannotCancel(t *testing.T) {
	rec := &recorder{willErr: errors.New("cancel this will"), gone: make(chan string, 10)}
	_, addr := bare.Serve(t, nil, rec)
	sub := bare.Connect(t, addr, rawmqtt.Connect{ID: "sub", Clean: true})
	bare.Exchange(t, sub, rawmqtt.Subscribe(1, "w/+", 0), 0x90)
	willing := bare.Connect(t, addr, rawmqtt.Connect{ID: "willing", Clean: true, WillTopic: "w/t", WillPayload: []byte("gone")})
	willing.Close()
	select { // mochi has sent the will, or not, by then
	case <-rec.gone:
	case <-time.After(bare.Wait):
		t.Fatal("the connection never ended")
	}
	bare.Exchange(t, bare.Connect(t, addr, rawmqtt.Connect{ID: "marker", Clean: true}), rawmqtt.Publish("w/m", 1, 1, []byte("marker")), 0x40)
	if got := bare.ReadUntil(t, sub, "marker"); !slices.Contains(got, "gone") {
		t.Fatal("mochi no longer shows a will published though OnWill failed: the mend in access/hook.go (the will's flag) may go (see doc.go)")
	}
}

// TestCanarySessionGoesToAnyUser: another user connecting with a client id takes its session.
func TestCanarySessionGoesToAnyUser(t *testing.T) {
	_, addr := bare.Serve(t, nil)
	alice := bare.Connect(t, addr, rawmqtt.Connect{ID: "shared", User: "alice"})
	bare.Exchange(t, alice, rawmqtt.Subscribe(1, "a/#", 1), 0x90)
	bare.Write(t, alice, rawmqtt.Disconnect())
	mallory := bare.Dial(t, addr, rawmqtt.Connect{ID: "shared", User: "mallory"})
	if connack := bare.Read(t, mallory); connack[3] != 0 || connack[2]&1 == 0 {
		t.Fatalf("mochi no longer shows another user's client id given its session (CONNACK % x): "+
			"the mend in access/hook.go (OnConnect) may go (see doc.go)", connack)
	}
}

// TestCanaryResendSkipsACL: mochi resends a resumed session's queue without a read check.
func TestCanaryResendSkipsACL(t *testing.T) {
	rec := new(recorder)
	_, addr := bare.Serve(t, nil, rec)
	first := bare.Connect(t, addr, rawmqtt.Connect{ID: "resumer"})
	bare.Exchange(t, first, rawmqtt.Subscribe(1, "q/#", 1), 0x90)
	bare.Write(t, first, rawmqtt.Disconnect())
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	bare.Exchange(t, pub, rawmqtt.Publish("q/x", 1, 1, []byte("queued")), 0x40) // queued, sent or not
	// mochi acknowledges before it delivers: the second PUBACK comes once the first message
	// has been queued, and checked.
	bare.Exchange(t, pub, rawmqtt.Publish("other", 1, 2, []byte("sync")), 0x40)
	rec.reset()
	back := bare.Connect(t, addr, rawmqtt.Connect{ID: "resumer"})
	bare.ReadUntil(t, back, "queued")
	if slices.Contains(rec.list(), "resumer read q/x") {
		t.Fatal("mochi no longer shows a resumed queue resent without a read check: the mend in access/hook.go (withholdUnreadable) may go (see doc.go)")
	}
}

// recorder records the ACL checks, "<client> read|write <topic>", and answers no to each (as
// auth.AllowHook, after it, would overrule), or, with deny, refuses every connection too; with
// willErr its OnWill fails.
type recorder struct {
	mqtt.HookBase
	deny    bool
	willErr error
	gone    chan string // when not nil, the id of each client whose connection ended
	mu      sync.Mutex
	checks  []string
}

func (h *recorder) ID() string { return "canary-recorder" }
func (h *recorder) Provides(b byte) bool {
	return b == mqtt.OnACLCheck || b == mqtt.OnConnectAuthenticate ||
		(b == mqtt.OnWill && h.willErr != nil) || (b == mqtt.OnDisconnect && h.gone != nil)
}

func (h *recorder) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	select {
	case h.gone <- cl.ID:
	default: // only the first few are waited for
	}
}

func (h *recorder) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return !h.deny }

func (h *recorder) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, cl.ID+map[bool]string{false: " read ", true: " write "}[write]+topic)
	return false
}

func (h *recorder) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) { return will, h.willErr }

func (h *recorder) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.checks)
}

func (h *recorder) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = nil
}

// TestCanaryDelayedWillOutOfReach: mochi holds a copy of an MQTT 5 delayed will once the
// connection has closed and publishes it when the delay is over, asking no hook (no ACL check, no
// OnWill): a reload could not withdraw it.
func TestCanaryDelayedWillOutOfReach(t *testing.T) {
	rec := &recorder{}
	_, addr := bare.Serve(t, nil, rec)
	sub := bare.Connect(t, addr, rawmqtt.Connect{ID: "watcher", Version: 5, Clean: true})
	bare.Exchange(t, sub, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 5, PacketID: 1, Filters: packets.Subscriptions{{Filter: "w/#", Qos: 0}}}), 0x90)
	c := rawmqtt.Connect{ID: "leaver", Version: 5, Clean: true, WillTopic: "w/leaver", WillPayload: []byte("gone")}
	c.Properties.SessionExpiryInterval, c.Properties.SessionExpiryIntervalFlag = 10, true
	pk := c.Packet()
	pk.Connect.WillProperties.WillDelayInterval = 1
	conn, err := net.DialTimeout("tcp", addr, bare.Wait)
	if err != nil {
		t.Fatal(err)
	}
	bare.Write(t, conn, rawmqtt.Encode(pk))
	if ack := bare.Read(t, conn); ack[0] != 0x20 {
		t.Fatalf("want CONNACK, got % x", ack)
	}
	rec.reset()
	_ = conn.Close() // no DISCONNECT: the will is due, after its delay
	for {
		got, err := rawmqtt.Decode(bare.Read(t, sub), 5)
		if err != nil {
			t.Fatal(err)
		}
		if got.FixedHeader.Type == packets.Publish && got.TopicName == "w/leaver" {
			break
		}
	}
	// (The subscriber's own read check of the delivery is not a check of the will.)
	if checks := slices.DeleteFunc(rec.list(), func(c string) bool { return !strings.HasPrefix(c, "leaver ") }); len(checks) > 0 {
		t.Errorf("mochi now checks a delayed will before it sends it (%v): the mend in access/wills.go may go (see doc.go)", checks)
	}
}
