package tests

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// hostPort is the host:port of a tcp:// URL as StartServer returns it.
func hostPort(url string) string { return strings.TrimPrefix(url, "tcp://") }

// pahoOpts are options for a test client of the broker at url: no reconnect unless tweak asks.
func pahoOpts(url, id string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker(url).SetClientID(id).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectTimeout(harness.Timeout).SetWriteTimeout(harness.Timeout).
		SetKeepAlive(30 * time.Second)
}

// mustConnect connects a paho client and disconnects it when the test ends.
func mustConnect(tb testing.TB, opts *paho.ClientOptions) paho.Client {
	tb.Helper()
	c := paho.NewClient(opts)
	if err := waitToken(c.Connect()); err != nil {
		tb.Fatalf("connect %s: %v", opts.ClientID, err)
	}
	tb.Cleanup(func() { c.Disconnect(100) })
	return c
}

// waitToken waits for a paho token, at most harness.Timeout.
func waitToken(tok paho.Token) error {
	if !tok.WaitTimeout(harness.Timeout) {
		return fmt.Errorf("no answer from the broker within %s", harness.Timeout)
	}
	return tok.Error()
}

// inbox collects the messages a paho client receives; its handler never blocks.
type inbox struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func (b *inbox) handler(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.msgs)
}

// payloads returns how many times each payload arrived.
func (b *inbox) payloads() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := make(map[string]int, len(b.msgs))
	for _, m := range b.msgs {
		seen[string(m.Payload())]++
	}
	return seen
}

// has tells whether a message with payload arrived.
func (b *inbox) has(payload string) bool { return b.payloads()[payload] > 0 }

// rawConn is a hand-driven MQTT 3.1.1 connection, for clients paho will not imitate: one that
// goes silent, or one that stops reading.
type rawConn struct {
	net.Conn
}

// dialRaw connects, sends CONNECT (clean session) and checks the CONNACK.
func dialRaw(tb testing.TB, addr, id string, keepalive time.Duration) *rawConn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, harness.Timeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	rc := &rawConn{c}
	rc.send(tb, rawmqtt.Connect{ID: id, Clean: true, KeepAlive: uint16(keepalive / time.Second)}.Encode())
	if ack := rc.read(tb); !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		tb.Fatalf("CONNACK for %s: % x", id, ack)
	}
	return rc
}

// onBothBrokers runs try, as a subtest, against our broker and against Mosquitto, each given a
// raw connection that nothing has been sent on yet: the same bytes, both answers checked alike.
func onBothBrokers(t *testing.T, try func(t *testing.T, c *rawConn)) {
	_, ours := harness.StartServer(t, nil)
	_, mosq := harness.StartMosquitto(t)
	for name, url := range map[string]string{"ours": ours, "mosquitto": mosq} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", hostPort(url), harness.Timeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			try(t, &rawConn{conn})
		})
	}
}

// connect sends CONNECT and checks that the CONNACK accepts it.
func (c *rawConn) connect(tb testing.TB, connect rawmqtt.Connect) {
	tb.Helper()
	c.send(tb, connect.Encode())
	if ack := c.read(tb); len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
		tb.Fatalf("CONNACK for %s: % x", connect.ID, ack)
	}
}

func (c *rawConn) send(tb testing.TB, pk []byte) {
	tb.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(harness.Timeout))
	if _, err := c.Write(pk); err != nil {
		tb.Fatalf("send % x: %v", pk[:min(len(pk), 8)], err)
	}
}

// subscribe subscribes to filter at QoS 0 and checks the SUBACK.
func (c *rawConn) subscribe(tb testing.TB, filter string) {
	tb.Helper()
	c.send(tb, rawmqtt.Subscribe(1, filter, 0))
	if ack := c.read(tb); !bytes.Equal(ack, []byte{0x90, 3, 0, 1, 0}) {
		tb.Fatalf("SUBACK for %s: % x", filter, ack)
	}
}

// read reads one packet, failing the test after harness.Timeout.
func (c *rawConn) read(tb testing.TB) []byte {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(harness.Timeout))
	pk, err := rawmqtt.Read(c)
	if err != nil {
		tb.Fatalf("read packet: %v", err)
	}
	return pk
}
