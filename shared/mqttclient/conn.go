package mqttclient

import (
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// KeepReleases makes paho remember, in store, that a QoS 2 message it sent has reached the
// PUBREL stage. paho v1.5.1 answers PUBREC with PUBREL but keeps the PUBLISH in its store
// (eclipse-paho/paho.mqtt.golang#788), so after a reconnect it sends the PUBLISH again, which a
// broker that has already finished the exchange takes for a new message: delivered twice. Here
// the connection is watched for PUBREC and the stored PUBLISH replaced by the PUBREL at once,
// so that the resend is the PUBREL, as MQTT 3.1.1 (4.3.3) requires.
//
// It also keeps a connection from carrying the same QoS 2 PUBLISH twice. paho v1.5.1 marks the
// client connected before it resends what its store holds, so a message published in between,
// or one whose Publish waited through the reconnect, goes out on the new connection twice:
// once from Publish, once (marked DUP) from the store. When the broker has finished the first
// exchange before the second copy arrives, the copy is a new message to it (Mosquitto 2.0.11
// then delivers it a second time). The copy is dropped while the first waits for its PUBREC,
// and sent as a PUBREL once the broker has received the message.
//
// And it reports each PUBCOMP written to store's OnComplete function: paho queues its PUBCOMP
// on a path of its own, which DISCONNECT can overtake, so only the connection can tell that the
// exchange of an incoming QoS 2 message is finished.
//
// It wraps the connection opts opens already (Trace's, when set), else a plain one.
func KeepReleases(opts *mqtt.ClientOptions, store *Store) {
	wrapConn(opts, func(conn net.Conn) net.Conn {
		return &qos2Conn{Conn: conn, store: store, onPubrec: store.released, carried: make(map[uint16]uint64)}
	})
}

// dial opens the network connection as paho's own openConnection does (without its proxy
// support from the environment).
func dial(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	dialer := o.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: o.ConnectTimeout}
	}
	switch uri.Scheme {
	case "tcp", "mqtt":
		return dialer.Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts":
		cfg := o.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return tls.DialWithDialer(dialer, "tcp", uri.Host, cfg)
	case "ws", "wss":
		u := *uri
		u.User = nil
		var cfg *tls.Config
		if uri.Scheme == "wss" {
			cfg = o.TLSConfig
		}
		return mqtt.NewWebsocket(u.String(), cfg, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	}
	return nil, errors.New("unknown scheme " + uri.Scheme)
}

// released records that the broker sent PUBREC for outgoing message id: from now on the
// message is a PUBREL waiting for PUBCOMP.
func (s *Store) released(id uint16) {
	key := "o." + itoa(id)
	if p, ok := s.Store.Get(key).(*packets.PublishPacket); ok && p.Qos == 2 {
		rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
		rel.MessageID = id
		// No DUP flag: in MQTT 3.1.1 the PUBREL flags are fixed (0010); Mosquitto drops a
		// connection that sets them otherwise.
		s.Put(key, rel)
	}
}

func itoa(n uint16) string {
	var b [5]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// qos2Conn follows the MQTT packets read from the broker and reports every PUBREC, and keeps
// the QoS 2 PUBLISH packets it writes from repeating (see KeepReleases).
type qos2Conn struct {
	net.Conn
	store    *Store
	onPubrec func(id uint16)

	mu     sync.Mutex // Read is called by one goroutine; the lock is for the race detector's peace
	phase  int        // 0: fixed header, 1: remaining length, 2: body
	typ    byte
	remain int
	mult   int
	id     []byte

	wmu     sync.Mutex        // paho writes from one goroutine; as above
	carried map[uint16]uint64 // packet id → store number of the QoS 2 PUBLISH written on this connection
}

func (c *qos2Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.scan(p[:n])
	c.mu.Unlock()
	return n, err
}

// Write writes p, one packet (paho writes each packet at once), unless it is a QoS 2 PUBLISH
// this connection has already carried: then it writes nothing while the broker has yet to
// answer with PUBREC, and the PUBREL after.
func (c *qos2Conn) Write(p []byte) (int, error) {
	if len(p) == 4 && p[0] == packets.Pubcomp<<4 && p[1] == 2 {
		n, err := c.Conn.Write(p)
		if err == nil {
			c.store.completed(uint16(p[2])<<8 | uint16(p[3]))
		}
		return n, err
	}
	id, ok := qos2PublishID(p)
	if !ok {
		return c.Conn.Write(p)
	}
	n, unreleased := c.store.unreleasedPublish(id)
	c.wmu.Lock()
	prev, seen := c.carried[id]
	switch {
	case !unreleased:
		// The broker has it (its PUBREC came: the store holds the PUBREL) or has finished it
		// (PUBCOMP: the store holds nothing). paho's resume may still write the PUBLISH it read
		// from the store before that, on this or a new connection (mochi resends its PUBREC right
		// after CONNACK): a PUBLISH now would be a new message to the broker. Only a PUBREL can
		// follow; one the broker has finished gets PUBCOMP, which frees the id resume claimed.
		c.wmu.Unlock()
		if _, err := c.Conn.Write([]byte{packets.Pubrel<<4 | 0x02, 0x02, byte(id >> 8), byte(id)}); err != nil {
			return 0, err
		}
		return len(p), nil
	case seen && prev == n:
		c.wmu.Unlock()
		return len(p), nil // carried on this connection already; the broker will answer, paho waits for that
	}
	c.carried[id] = n
	c.wmu.Unlock()
	return c.Conn.Write(p)
}

// qos2PublishID returns the packet id of p when p is a whole QoS 2 PUBLISH packet.
func qos2PublishID(p []byte) (uint16, bool) {
	if len(p) < 2 || p[0]>>4 != packets.Publish || (p[0]>>1)&0x03 != 2 {
		return 0, false
	}
	i, remain, mult := 1, 0, 1
	for ; i < len(p) && i <= 4; i++ {
		remain += int(p[i]&0x7f) * mult
		mult *= 128
		if p[i]&0x80 == 0 {
			break
		}
	}
	body := i + 1
	if body+2 > len(p) || len(p)-body != remain {
		return 0, false
	}
	idAt := body + 2 + (int(p[body])<<8 | int(p[body+1]))
	if idAt+2 > len(p) {
		return 0, false
	}
	return uint16(p[idAt])<<8 | uint16(p[idAt+1]), true
}

func (c *qos2Conn) scan(data []byte) {
	for _, b := range data {
		switch c.phase {
		case 0:
			c.typ, c.remain, c.mult, c.phase = b>>4, 0, 1, 1
		case 1:
			c.remain += int(b&0x7f) * c.mult
			c.mult *= 128
			if b&0x80 == 0 {
				c.phase, c.id = 2, c.id[:0]
				if c.remain == 0 {
					c.phase = 0
				}
			}
		case 2:
			if (c.typ == packets.Pubrec || c.typ == packets.Connack) && len(c.id) < 2 {
				c.id = append(c.id, b) // the packet id; a CONNACK's flags and return code
			}
			c.remain--
			if c.remain == 0 {
				if c.typ == packets.Pubrec && len(c.id) == 2 {
					c.onPubrec(uint16(c.id[0])<<8 | uint16(c.id[1]))
				}
				if c.typ == packets.Connack && len(c.id) == 2 && c.id[1] == 0 {
					c.store.sessionPresent.Store(c.id[0]&1 == 1)
				}
				c.phase = 0
			}
		}
	}
}

// wrapConn has opts wrap each connection it opens (the one it opens already, else a plain one).
func wrapConn(opts *mqtt.ClientOptions, wrap func(net.Conn) net.Conn) {
	open := opts.CustomOpenConnectionFn
	if open == nil {
		open = dial
	}
	opts.SetCustomOpenConnectionFn(func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		conn, err := open(uri, o)
		if err != nil {
			return nil, err
		}
		return wrap(conn), nil
	})
}
