package load

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// A lean MQTT 3.1.1 client, just enough for the benchmark: CONNECT, SUBSCRIBE, PUBLISH at QoS 0-2
// and the acknowledgements, encoded by mochi's encoder (rawmqtt) once and reused with only the
// packet id changed. It batches writes in a bufio.Writer and reads packets into one reused
// buffer, so the load generator costs far less CPU than the brokers it measures. The same code
// drives every broker.

type mqttConn struct {
	nc net.Conn
	r  *bufio.Reader
	in *rawmqtt.Reader // reads r
	mu sync.Mutex      // guards w: the publisher loop and its ack reader both write
	w  *bufio.Writer
}

// dialMQTT connects to addr (from local, when not nil), sends CONNECT with a clean session and
// keep-alive 0 (never timed out), and waits for a successful CONNACK.
// bufSize is the read and write buffer size: large for the load, small for idle connections.
func dialMQTT(ctx context.Context, addr string, local net.Addr, clientID string, bufSize int) (*mqttConn, error) {
	d := net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := newMQTTConn(nc, bufio.NewReaderSize(nc, bufSize), bufio.NewWriterSize(nc, bufSize))
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	c.w.Write(rawmqtt.Connect{ID: clientID, Clean: true}.Encode())
	if err := c.w.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	fh, body, err := c.in.Next()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if fh.Type != packets.Connack || len(body) < 2 || body[1] != 0 {
		nc.Close()
		return nil, fmt.Errorf("connection refused: packet type %d body %x", fh.Type, body)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func newMQTTConn(nc net.Conn, r *bufio.Reader, w *bufio.Writer) *mqttConn {
	return &mqttConn{nc: nc, r: r, in: rawmqtt.NewReader(r), w: w}
}

// subscribe subscribes to one filter and waits for the SUBACK.
func (c *mqttConn) subscribe(filter string, qos byte) error {
	_ = c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.nc.SetDeadline(time.Time{})
	c.w.Write(rawmqtt.Subscribe(1, filter, qos))
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	fh, body, err := c.in.Next()
	if err != nil {
		return fmt.Errorf("read SUBACK: %w", err)
	}
	if fh.Type != packets.Suback || len(body) < 3 || body[2] > 2 {
		return fmt.Errorf("subscribe refused: packet type %d body %x", fh.Type, body)
	}
	return nil
}

// publishHead is a PUBLISH up to its payload, encoded once per publisher for its topic, QoS and
// payload size; writePublish patches only the packet id.
type publishHead []byte

func newPublishHead(topic string, qos byte, size int) publishHead {
	pk := rawmqtt.Publish(topic, qos, 1, make([]byte, size))
	return pk[:len(pk)-size]
}

// writePublish appends a PUBLISH to the write buffer (the caller holds c.mu and flushes).
// payload must be of the size h was made for.
func (c *mqttConn) writePublish(h publishHead, id uint16, payload []byte) error {
	if h[0]&0x06 != 0 { // QoS 1 or 2: the packet id ends the head
		binary.BigEndian.PutUint16(h[len(h)-2:], id)
	}
	c.w.Write(h)
	_, err := c.w.Write(payload)
	return err
}

// acks are PUBACK, PUBREC, PUBREL and PUBCOMP for packet id 0, by type; writeAck sets the id.
var acks = func() (a [16][4]byte) {
	for _, typ := range []byte{packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp} {
		copy(a[typ][:], rawmqtt.Ack(typ, 0))
	}
	return a
}()

// writeAck appends an acknowledgement (PUBACK, PUBREC, PUBREL or PUBCOMP) to the write buffer.
func (c *mqttConn) writeAck(typ byte, id uint16) error {
	ack := acks[typ]
	binary.BigEndian.PutUint16(ack[2:], id)
	_, err := c.w.Write(ack[:])
	return err
}

// flush writes what is buffered; the publisher loop and its ack reader share the writer.
func (c *mqttConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

// close sends DISCONNECT and closes the socket.
func (c *mqttConn) close() {
	c.mu.Lock()
	c.w.Write(rawmqtt.Disconnect())
	c.w.Flush()
	c.mu.Unlock()
	c.nc.Close()
}
