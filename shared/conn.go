package shared

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
func KeepReleases(opts *mqtt.ClientOptions, store *Store) {
	opts.SetCustomOpenConnectionFn(func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		conn, err := dial(uri, o)
		if err != nil {
			return nil, err
		}
		return &pubrecConn{Conn: conn, onPubrec: store.released}, nil
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

// pubrecConn follows the MQTT packets read from the broker and reports every PUBREC.
type pubrecConn struct {
	net.Conn
	onPubrec func(id uint16)

	mu     sync.Mutex // Read is called by one goroutine; the lock is for the race detector's peace
	phase  int        // 0: fixed header, 1: remaining length, 2: body
	typ    byte
	remain int
	mult   int
	id     []byte
}

func (c *pubrecConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.scan(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *pubrecConn) scan(data []byte) {
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
			if c.typ == packets.Pubrec && len(c.id) < 2 {
				c.id = append(c.id, b)
			}
			c.remain--
			if c.remain == 0 {
				if c.typ == packets.Pubrec && len(c.id) == 2 {
					c.onPubrec(uint16(c.id[0])<<8 | uint16(c.id[1]))
				}
				c.phase = 0
			}
		}
	}
}
