package broker

// Canaries: each test shows one mochi v2.7.9 flaw that the broker's assembly or its store mends
// (mochifix/doc.go) on bare mochi, and fails once mochi no longer shows it, so that the mend
// can go.

import (
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/internal/bare"
	"mqttdemo/mqttserver/rawmqtt"
)

// TestCanaryNoDeadlineBeforeConnect: mochi reads a connection's CONNECT before it sets any
// deadline, so a connection that sends nothing is held for ever.
func TestCanaryNoDeadlineBeforeConnect(t *testing.T) {
	server := bare.New(t, nil, new(auth.AllowHook))
	client, end := net.Pipe()
	conn := &deadlineConn{Conn: end, firstRead: make(chan bool, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = server.EstablishConnection("pipe", conn)
	}()
	t.Cleanup(func() { client.Close(); <-done })
	select {
	case hadDeadline := <-conn.firstRead:
		if hadDeadline {
			t.Fatal("mochi no longer shows no deadline before CONNECT: the mend in broker/connecttimeout.go may go (see doc.go)")
		}
	case <-time.After(waitTimeout):
		t.Fatal("mochi never read the connection")
	}
}

// deadlineConn tells, at its first Read, whether a deadline was set before.
type deadlineConn struct {
	net.Conn
	deadline  atomic.Bool
	once      sync.Once
	firstRead chan bool
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.deadline.Store(true)
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.deadline.Store(true)
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.once.Do(func() { c.firstRead <- c.deadline.Load() })
	return c.Conn.Read(p)
}

// TestCanaryAckedBeforeDelivered: mochi writes a QoS 1 PUBACK before it queues the message to
// the subscribers' sessions, so a crash in between loses a message the publisher saw accepted.
func TestCanaryAckedBeforeDelivered(t *testing.T) {
	rec := new(qosRecorder)
	_, addr := bare.Serve(t, nil, rec)
	sub := rawConnect(t, addr, "sub", false)
	rawExchange(t, sub, rawmqtt.Subscribe(1, "q/#", 1), 0x90, 1)
	pub := rawConnect(t, addr, "pub", true)
	rawExchange(t, pub, rawmqtt.Publish("q/x", 1, 1, []byte("m")), 0x40, 1)
	waitFor(t, "the message queued to the subscriber", func() bool { return slices.Contains(rec.list(), "sub queued 3") })
	got := rec.list()
	if acked := slices.Index(got, "pub sent 4"); acked < 0 || acked > slices.Index(got, "sub queued 3") {
		t.Fatalf("mochi no longer shows a message acknowledged before it is delivered (%q): "+
			"the mend in store/store.go (OnPublish) may go (see doc.go)", got)
	}
}

// TestCanaryQoS2ProgressNotStored: mochi moves an outgoing QoS 2 message to PUBREL in memory
// only; no hook a store could use is told.
func TestCanaryQoS2ProgressNotStored(t *testing.T) {
	rec := new(qosRecorder)
	server, addr := bare.Serve(t, nil, rec)
	sub := rawConnect(t, addr, "sub", false)
	rawExchange(t, sub, rawmqtt.Subscribe(1, "q/#", 2), 0x90, 1)
	pub := rawConnect(t, addr, "pub", true)
	rawExchange(t, pub, rawmqtt.Publish("q/x", 2, 1, []byte("m")), 0x50, 1)
	raw, err := rawmqtt.Read(sub)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := rawmqtt.Decode(raw, 4)
	if err != nil || pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos != 2 {
		t.Fatalf("want a QoS 2 PUBLISH, got % x (%v)", raw, err)
	}
	rawExchange(t, sub, rawmqtt.Ack(packets.Pubrec, pk.PacketID), 0x62, int(pk.PacketID))
	cl, _ := server.Clients.Get("sub")
	held, _ := cl.State.Inflight.Get(pk.PacketID)
	told := slices.Contains(rec.list(), "sub queued 6")
	if held.FixedHeader.Type != packets.Pubrel || told {
		t.Fatalf("mochi no longer shows QoS 2 progress kept from the hooks (held type %d, hooks %q): "+
			"the mend in store/store.go (OnPacketRead) may go (see doc.go)", held.FixedHeader.Type, rec.list())
	}
}

// qosRecorder records, in order, "<client> queued <type>" for each OnQosPublish and
// "<client> sent <type>" for each packet written.
type qosRecorder struct {
	mqtt.HookBase
	mu     sync.Mutex
	events []string
}

func (h *qosRecorder) ID() string { return "canary-qos-recorder" }
func (h *qosRecorder) Provides(b byte) bool {
	return b == mqtt.OnQosPublish || b == mqtt.OnPacketSent
}

func (h *qosRecorder) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	h.add(cl.ID + " queued " + strconv.Itoa(int(pk.FixedHeader.Type)))
}

func (h *qosRecorder) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	h.add(cl.ID + " sent " + strconv.Itoa(int(pk.FixedHeader.Type)))
}

func (h *qosRecorder) add(e string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

func (h *qosRecorder) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// TestCanaryClosePanicsTwice: mochi's Close closes a channel, and panics when called again.
func TestCanaryClosePanicsTwice(t *testing.T) {
	server := bare.New(t, nil)
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	_ = server.Close()
	panicked := func() (p bool) {
		defer func() { p = recover() != nil }()
		_ = server.Close()
		return false
	}()
	if !panicked {
		t.Fatal("mochi no longer shows Close panicking when called twice: the mend in broker/run.go (closeOnce) may go (see doc.go)")
	}
}

// TestCanarySysGaugesStale: mochi brings the clients total up to date only when it publishes
// $SYS (at Serve, then every SysTopicResendInterval, made long here so that none comes between).
func TestCanarySysGaugesStale(t *testing.T) {
	server, addr := bare.Serve(t, &mqtt.Options{SysTopicResendInterval: 3600})
	rawConnect(t, addr, "c", true)
	connected, total := atomic.LoadInt64(&server.Info.ClientsConnected), atomic.LoadInt64(&server.Info.ClientsTotal)
	if connected != 1 || total != 0 {
		t.Fatalf("mochi no longer shows stale $SYS gauges (connected %d, total %d): "+
			"the mend in broker/stats.go may go (see doc.go)", connected, total)
	}
}

// TestCanaryStoredExpiryLost: mochi's storage record keeps an MQTT 5 message's expiry interval
// and the time it was received, but ToPacket gives the loaded message no expiry time: after a
// restart it never expired.
func TestCanaryStoredExpiryLost(t *testing.T) {
	m := storage.Message{T: storage.InflightKey, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		Created: time.Now().Add(-time.Hour).Unix(), Properties: storage.MessageProperties{MessageExpiryInterval: 60}}
	if pk := m.ToPacket(); pk.Expiry == 0 {
		return
	}
	t.Error("mochi now restores a stored message's expiry: the mend in store/store.go (restoreExpiry) may go (see doc.go)")
}
