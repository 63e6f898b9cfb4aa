// Package health is the container health probe: the client side (mqttserver -healthcheck, which
// connects, waits for a CONNACK and leaves) and how the broker tells the probe's visits from other
// clients, to keep them out of the info log and the live page. It knows nothing else of the broker.
package health

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// Timeout bounds the whole health probe: dial, CONNECT, CONNACK.
const Timeout = 3 * time.Second

// ClientID is the probe's client id; the probe's visits are logged at debug only.
const ClientID = "healthcheck"

// IsProbe tells whether cl may be our -healthcheck probe, which connects every few seconds: its
// id, no user name, and from this machine. Any local client can look like that: Visits tells
// the probe by what it does as well.
func IsProbe(cl *mqtt.Client, username []byte) bool {
	if cl.ID != ClientID || len(username) > 0 {
		return false
	}
	host, _, err := net.SplitHostPort(cl.Net.Remote)
	if err != nil {
		host = cl.Net.Remote // no port
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Visits keeps the probe's visits quiet, and only those. A client is the probe only while it
// does exactly what the probe does: connect (IsProbe, MQTT 3.1.1, clean session, keep-alive 0,
// no user name or password, no will), then leave with DISCONNECT within Timeout. Anything
// else (any other packet, staying longer, leaving otherwise) reveals it, its connection
// included. Each hook that hides the probe keeps a Visits of its own.
type Visits struct {
	mu      sync.Mutex
	pending map[*mqtt.Client]*visit
}

type visit struct {
	reveal func()
	timer  *time.Timer
}

// Arrive is called when cl's session is established, with its CONNECT. For a client that may be
// the probe it returns true and keeps reveal, run once if the client turns out not to be (under
// a lock of Visits: reveal must not call it); the caller keeps quiet. Otherwise it returns false.
func (v *Visits) Arrive(cl *mqtt.Client, pk packets.Packet, reveal func()) bool {
	c := pk.Connect
	if !IsProbe(cl, c.Username) || cl.Properties.ProtocolVersion != 4 || !c.Clean || c.Keepalive != 0 ||
		c.UsernameFlag || c.PasswordFlag || c.WillFlag {
		return false
	}
	vis := &visit{reveal: reveal}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pending == nil {
		v.pending = make(map[*mqtt.Client]*visit)
	}
	v.pending[cl] = vis
	vis.timer = time.AfterFunc(Timeout, func() { v.reveal(cl) })
	return true
}

// Sent is called for every packet a client sends (OnPacketRead): anything but CONNECT and
// DISCONNECT shows a client that may be the probe as the ordinary client it is.
func (v *Visits) Sent(cl *mqtt.Client, pk packets.Packet) {
	if cl.ID != ClientID || pk.FixedHeader.Type == packets.Connect || pk.FixedHeader.Type == packets.Disconnect {
		return // all clients but one pass here
	}
	v.reveal(cl)
}

// reveal runs the reveal function of cl, if it is still pending.
func (v *Visits) reveal(cl *mqtt.Client) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if vis, ok := v.pending[cl]; ok {
		delete(v.pending, cl)
		vis.timer.Stop()
		vis.reveal()
	}
}

// Leave is called when cl's connection ends, normal telling whether it sent DISCONNECT. It
// returns true when the visit was the probe's, to be kept quiet; a client that may have been the
// probe but leaves otherwise is revealed first.
func (v *Visits) Leave(cl *mqtt.Client, normal bool) bool {
	if cl.ID != ClientID {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	vis, ok := v.pending[cl]
	if !ok {
		return false
	}
	delete(v.pending, cl)
	vis.timer.Stop()
	if !normal {
		vis.reveal()
	}
	return normal
}

// Check connects to the MQTT listener at listen (":1883" means this machine) and reports
// whether the broker answered the CONNECT with a CONNACK. A refusal (say, credentials needed)
// still proves the broker serves MQTT, so it counts as healthy.
func Check(listen string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, port)
	conn, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(Timeout))
	// Clean session, keep-alive 0 (left zero): the broker never times the probe out.
	connect := rawmqtt.Connect{ID: ClientID, Clean: true}.Encode()
	if _, err := conn.Write(connect); err != nil {
		return fmt.Errorf("health check: send CONNECT to %s: %w", addr, err)
	}
	// An MQTT 3.1.1 CONNACK is 4 bytes: reading no more bounds what a stranger on the port sends us.
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		return fmt.Errorf("health check: no CONNACK from %s: %w", addr, err)
	}
	pk, err := rawmqtt.Decode(ack, 4)
	if err != nil || pk.FixedHeader.Type != packets.Connack {
		return fmt.Errorf("health check: %s answered % x, not a CONNACK", addr, ack)
	}
	if pk.ReasonCode == 0 {
		_, _ = conn.Write(rawmqtt.Disconnect()) // so the broker logs a normal end
	}
	return nil
}

// CheckHTTP asks /healthz on the -http-listen address listen, which answers 200 only while every
// listener of the broker accepts connections (MQTT, TLS, WebSocket, HTTP); else it returns the
// reason /healthz gives.
func CheckHTTP(listen string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	client := &http.Client{Timeout: Timeout}
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("health check: %s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
