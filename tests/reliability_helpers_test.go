package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

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
	ka := int(keepalive / time.Second)
	rc.send(tb, mqttPacket(0x10, mqttString("MQTT"), []byte{4, 0x02, byte(ka >> 8), byte(ka)}, mqttString(id)))
	if ack := rc.read(tb); !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		tb.Fatalf("CONNACK for %s: % x", id, ack)
	}
	return rc
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
	c.send(tb, mqttPacket(0x82, []byte{0, 1}, mqttString(filter), []byte{0}))
	if ack := c.read(tb); !bytes.Equal(ack, []byte{0x90, 3, 0, 1, 0}) {
		tb.Fatalf("SUBACK for %s: % x", filter, ack)
	}
}

// read reads one packet, failing the test after harness.Timeout.
func (c *rawConn) read(tb testing.TB) []byte {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(harness.Timeout))
	pk, err := readMQTTPacket(c)
	if err != nil {
		tb.Fatalf("read packet: %v", err)
	}
	return pk
}

// readMQTTPacket reads one whole MQTT packet, fixed header included.
func readMQTTPacket(r io.Reader) ([]byte, error) {
	var head [1]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	pk := head[:]
	length, mult := 0, 1
	for i := 0; ; i++ {
		var b [1]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		pk = append(pk, b[0])
		length += int(b[0]&127) * mult
		if b[0]&128 == 0 {
			break
		}
		if i == 3 {
			return nil, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(pk, body...), nil
}

// mqttPacket joins body and prefixes the fixed header with its remaining length.
func mqttPacket(header byte, body ...[]byte) []byte {
	joined := bytes.Join(body, nil)
	out := []byte{header}
	for n := len(joined); ; {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 128
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, joined...)
}

// mqttString is an MQTT UTF-8 string: two length bytes, then the bytes.
func mqttString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
