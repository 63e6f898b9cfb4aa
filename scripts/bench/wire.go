package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// A lean MQTT 3.1.1 client, just enough for the benchmark: CONNECT, SUBSCRIBE, PUBLISH at QoS 0-2
// and the acknowledgements. It batches writes in a bufio.Writer and parses packets in place, so
// the load generator costs far less CPU than the brokers it measures. The same code drives every
// broker.

// MQTT control packet types (high nibble of the fixed header).
const (
	pkConnect    = 1
	pkConnack    = 2
	pkPublish    = 3
	pkPuback     = 4
	pkPubrec     = 5
	pkPubrel     = 6
	pkPubcomp    = 7
	pkSubscribe  = 8
	pkSuback     = 9
	pkDisconnect = 14
)

type mqttConn struct {
	nc  net.Conn
	r   *bufio.Reader
	mu  sync.Mutex // guards w: the publisher loop and its ack reader both write
	w   *bufio.Writer
	buf []byte // body of the last packet read; reused
}

// dialMQTT connects to addr (from local, when not nil), sends CONNECT with a clean session and
// waits for a successful CONNACK.
// bufSize is the read and write buffer size: large for the load, small for idle connections.
func dialMQTT(ctx context.Context, addr string, local net.Addr, clientID string, bufSize int) (*mqttConn, error) {
	d := net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &mqttConn{nc: nc, r: bufio.NewReaderSize(nc, bufSize), w: bufio.NewWriterSize(nc, bufSize)}
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	c.w.Write(encodeConnect(clientID))
	if err := c.w.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	typ, _, body, err := c.readPacket()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if typ != pkConnack || len(body) < 2 || body[1] != 0 {
		nc.Close()
		return nil, fmt.Errorf("connection refused: packet type %d body %x", typ, body)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func encodeConnect(clientID string) []byte {
	var vh []byte
	vh = appendString(vh, "MQTT")
	vh = append(vh, 4, 0x02, 0, 0) // protocol level 4, clean session, keep-alive 0 (never times out)
	vh = appendString(vh, clientID)
	return appendFixed(nil, pkConnect<<4, vh)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendFixed(b []byte, header byte, body []byte) []byte {
	b = append(b, header)
	b = appendVarint(b, len(body))
	return append(b, body...)
}

func appendVarint(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// subscribe subscribes to one filter and waits for the SUBACK.
func (c *mqttConn) subscribe(filter string, qos byte) error {
	body := binary.BigEndian.AppendUint16(nil, 1)
	body = appendString(body, filter)
	body = append(body, qos)
	_ = c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.nc.SetDeadline(time.Time{})
	c.w.Write(appendFixed(nil, pkSubscribe<<4|0x02, body))
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	typ, _, body, err := c.readPacket()
	if err != nil {
		return fmt.Errorf("read SUBACK: %w", err)
	}
	if typ != pkSuback || len(body) < 3 || body[2] > 2 {
		return fmt.Errorf("subscribe refused: packet type %d body %x", typ, body)
	}
	return nil
}

// writePublish appends a PUBLISH to the write buffer (the caller holds c.mu and flushes).
func (c *mqttConn) writePublish(topic string, qos byte, id uint16, payload []byte) error {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	var hdr [16]byte
	h := append(hdr[:0], pkPublish<<4|qos<<1)
	h = appendVarint(h, n)
	h = binary.BigEndian.AppendUint16(h, uint16(len(topic)))
	c.w.Write(h)
	c.w.WriteString(topic)
	if qos > 0 {
		c.w.Write([]byte{byte(id >> 8), byte(id)})
	}
	_, err := c.w.Write(payload)
	return err
}

// writeAck appends a two-byte acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP).
func (c *mqttConn) writeAck(typ byte, id uint16) error {
	flags := byte(0)
	if typ == pkPubrel {
		flags = 0x02
	}
	_, err := c.w.Write([]byte{typ<<4 | flags, 2, byte(id >> 8), byte(id)})
	return err
}

// readPacket reads one packet; body is valid until the next call.
func (c *mqttConn) readPacket() (typ, flags byte, body []byte, err error) {
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		d, err := c.r.ReadByte()
		if err != nil {
			return 0, 0, nil, err
		}
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, 0, nil, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return 0, 0, nil, err
	}
	return h >> 4, h & 0x0f, c.buf, nil
}

// parsePublish splits a PUBLISH body into its packet id (0 at QoS 0) and payload.
func parsePublish(flags byte, body []byte) (qos byte, id uint16, payload []byte, err error) {
	if len(body) < 2 {
		return 0, 0, nil, errors.New("short PUBLISH")
	}
	tl := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	if len(rest) < tl {
		return 0, 0, nil, errors.New("short PUBLISH topic")
	}
	rest = rest[tl:]
	qos = flags >> 1 & 3
	if qos > 0 {
		if len(rest) < 2 {
			return 0, 0, nil, errors.New("short PUBLISH id")
		}
		id = binary.BigEndian.Uint16(rest)
		rest = rest[2:]
	}
	return qos, id, rest, nil
}

// close sends DISCONNECT and closes the socket.
func (c *mqttConn) close() {
	c.mu.Lock()
	c.w.Write([]byte{pkDisconnect << 4, 0})
	c.w.Flush()
	c.mu.Unlock()
	c.nc.Close()
}
