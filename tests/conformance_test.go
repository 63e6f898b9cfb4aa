package tests

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// The conformance suite runs each scenario of conformanceScenarios against mqttserver and
// against Mosquitto, the oracle, and compares what every client receives: the messages (topic,
// payload, QoS, retain flag; DUP and message expiry where a scenario asks), in order within a
// topic and QoS (MQTT-4.6.0), and the answers it gets (CONNACK, SUBACK, UNSUBACK, error reason
// codes, a connection the broker ends). Where MQTT allows more than one answer the difference is
// in allowedDifferences, with its clause, and a scenario names those it may show.
//
// A scenario that differs because of a known open bug says so in waitsFor: it is skipped with
// that reason unless CONFORMANCE_STRICT is set, when it fails like any other.
//
//	go test -race -count=1 -run 'TestConformance' mqttdemo/tests
//	CONFORMANCE_STRICT=1 go test -count=1 -run 'TestConformance$' mqttdemo/tests

// confScenario is a conformance scenario: steps run in order by named clients.
type confScenario struct {
	name  string
	steps []confStep
	// restart: the scenario restarts the broker, so it gets brokers of its own that persist
	// (mqttserver -data, Mosquitto persistence true); the others share one of each.
	restart bool
	// allow names the entries of allowedDifferences this scenario may show.
	allow []string
	// shared names clients whose messages are compared together: the members of a shared
	// subscription group, any of which the broker may choose (MQTT 5 §4.8.2).
	shared []string
	// compareDup and compareExpiry add the DUP flag and the Message Expiry Interval to what is
	// compared (off elsewhere, so that a scenario shows one difference, not every one).
	compareDup, compareExpiry bool
	// want lists, per client, messages ("topic=payload") it must have received at least once,
	// from either broker: so that a scenario in which both lose a message fails too.
	want map[string][]string
	// waitsFor names the open issue item the scenario fails for on today's main.
	waitsFor string
}

// waits reports whether the scenario waits for time to pass (an expiry, a will's delay).
func (sc confScenario) waits() bool {
	for _, s := range sc.steps {
		if s.op == opElapse || s.conn.willDelay > 0 || s.conn.expiry > 0 && s.conn.expiry < 10 {
			return true
		}
	}
	return false
}

type confOp int

const (
	opConnect confOp = iota
	opSubscribe
	opUnsubscribe
	opPublish
	opRelease        // PUBREL for a QoS 2 PUBLISH stopped after its PUBREC
	opWithhold       // stop acknowledging the broker's messages
	opAck            // send what was withheld and acknowledge from now on
	opDisconnect     // DISCONNECT, then close
	opDisconnectWill // MQTT 5 DISCONNECT 0x04: with the will
	opDrop           // close the socket without DISCONNECT
	opRestart        // stop the broker cleanly and start it again with its persisted state
	opSettle         // wait until every connected client got a sentinel sent after everything
	opAwait          // wait until a client got n messages on a topic (a will, a delayed one)
	opElapse         // let time pass on the clock (message expiry), never to synchronise
)

// confStep is one action of a scenario; the helpers below build them.
type confStep struct {
	op      confOp
	client  string
	conn    confConnect
	filter  string // SUBSCRIBE, UNSUBSCRIBE
	topic   string // PUBLISH, await
	payload string
	qos     byte
	retain  bool
	id      uint16 // packet id the client chooses
	// theirs, when not 0, makes the client take for its packet the id the broker gave the
	// theirs-th QoS 1/2 message it received on this connection: a deliberate clash.
	theirs int
	// recent, when not 0, takes the id of the recent-th newest QoS 1/2 message received on this
	// connection, if there is one (id otherwise), without waiting: the randomised scenarios.
	recent  int
	expiry  uint32 // MQTT 5 Message Expiry Interval of a PUBLISH
	holdRel bool   // QoS 2 PUBLISH: stop after PUBREC (opRelease finishes it)
	subOpts packets.Subscription
	n       int
	d       time.Duration
}

// confConnect is what a scenario's CONNECT says.
type confConnect struct {
	version     byte // 4 or 5
	clean       bool
	expiry      uint32 // MQTT 5 Session Expiry Interval
	receiveMax  uint16 // MQTT 5 Receive Maximum; 0: not sent
	maxPacket   uint32 // MQTT 5 Maximum Packet Size; 0: not sent
	will        string // will topic; empty: no will
	willPayload string
	willQoS     byte
	willRetain  bool
	willDelay   uint32 // MQTT 5 Will Delay Interval
	withhold    bool   // acknowledge nothing from the start, as withhold
}

// connect is a CONNECT with MQTT version v; a persistent MQTT 5 session lasts an hour.
func connect(c string, v byte, clean bool) confStep {
	o := confConnect{version: v, clean: clean}
	if v == 5 && !clean {
		o.expiry = 3600
	}
	return confStep{op: opConnect, client: c, conn: o}
}

func connectWith(c string, o confConnect) confStep {
	return confStep{op: opConnect, client: c, conn: o}
}

func sub(c string, id uint16, filter string, qos byte) confStep {
	return confStep{op: opSubscribe, client: c, id: id, filter: filter, subOpts: packets.Subscription{Qos: qos}}
}

// subWith subscribes with MQTT 5 subscription options (Qos included).
func subWith(c string, id uint16, filter string, o packets.Subscription) confStep {
	return confStep{op: opSubscribe, client: c, id: id, filter: filter, subOpts: o}
}

func unsub(c string, id uint16, filter string) confStep {
	return confStep{op: opUnsubscribe, client: c, id: id, filter: filter}
}

func pub(c, topic string, qos byte, id uint16, payload string) confStep {
	return confStep{op: opPublish, client: c, topic: topic, qos: qos, id: id, payload: payload}
}

func pubRetained(c, topic string, qos byte, id uint16, payload string) confStep {
	s := pub(c, topic, qos, id, payload)
	s.retain = true
	return s
}

// pubTheirs publishes with the packet id of the k-th QoS 1/2 message c received on this
// connection.
func pubTheirs(c, topic string, qos byte, k int, payload string) confStep {
	s := pub(c, topic, qos, 0, payload)
	s.theirs = k
	return s
}

// pubExpiring publishes with an MQTT 5 Message Expiry Interval.
func pubExpiring(c, topic string, qos byte, id uint16, payload string, expiry uint32) confStep {
	s := pub(c, topic, qos, id, payload)
	s.expiry = expiry
	return s
}

// pubHeld is a QoS 2 PUBLISH left after its PUBREC, its id in use until release.
func pubHeld(c, topic string, id uint16, payload string) confStep {
	s := pub(c, topic, 2, id, payload)
	s.holdRel = true
	return s
}

func release(c string, id uint16) confStep { return confStep{op: opRelease, client: c, id: id} }
func withhold(c string) confStep           { return confStep{op: opWithhold, client: c} }
func ackAll(c string) confStep             { return confStep{op: opAck, client: c} }
func disconnect(c string) confStep         { return confStep{op: opDisconnect, client: c} }
func disconnectWithWill(c string) confStep {
	return confStep{op: opDisconnectWill, client: c}
}
func drop(c string) confStep          { return confStep{op: opDrop, client: c} }
func restart() confStep               { return confStep{op: opRestart} }
func settle() confStep                { return confStep{op: opSettle} }
func elapse(d time.Duration) confStep { return confStep{op: opElapse, d: d} }

// await waits until c received n messages on topic.
func await(c, topic string, n int) confStep {
	return confStep{op: opAwait, client: c, topic: topic, n: n}
}

// confBroker is a broker a scenario runs against.
type confBroker struct {
	name    string
	addr    string
	restart func(t *testing.T) // nil: not persistent
}

// startConfOurs runs mqttserver; persistent: with -data in a temporary directory.
func startConfOurs(t *testing.T, persistent bool) *confBroker {
	t.Helper()
	port := harness.FreePort(t)
	args := []string{"-listen", fmt.Sprintf("127.0.0.1:%d", port)}
	if persistent {
		args = append(args, "-data", t.TempDir())
	}
	p, url := harness.StartServer(t, nil, args...)
	b := &confBroker{name: "mqttserver", addr: hostPort(url)}
	if persistent {
		b.restart = func(t *testing.T) {
			t.Helper()
			p.Signal(t, os.Interrupt)
			if code := p.Exit(t); code != 0 {
				t.Fatalf("mqttserver stopped with exit status %d", code)
			}
			p, _ = harness.StartServer(t, nil, args...)
		}
	}
	return b
}

// startConfMosquitto runs Mosquitto; persistent: persistence true, its file in a temporary
// directory (written when it stops).
func startConfMosquitto(t *testing.T, persistent bool) *confBroker {
	t.Helper()
	port := harness.FreePort(t)
	// set_tcp_nodelay: small packets without Nagle's 40 ms waits
	lines := []string{"allow_anonymous true", "set_tcp_nodelay true", "persistence false"}
	if persistent {
		lines = []string{"allow_anonymous true", "set_tcp_nodelay true", "persistence true", "persistence_location " + t.TempDir() + "/"}
	}
	conf := harness.WriteMosquittoConfig(t, port, lines...)
	p := harness.RunMosquitto(t, conf, port)
	b := &confBroker{name: "mosquitto", addr: fmt.Sprintf("127.0.0.1:%d", port)}
	if persistent {
		b.restart = func(t *testing.T) {
			t.Helper()
			p.Signal(t, os.Interrupt)
			if code := p.Exit(t); code != 0 {
				t.Fatalf("mosquitto stopped with exit status %d", code)
			}
			p = harness.RunMosquitto(t, conf, port)
		}
	}
	return b
}

// confOutcome is what each client of one run received.
type confOutcome map[string]*confConn

// confRun is one scenario run against one broker.
type confRun struct {
	t       *testing.T
	broker  *confBroker
	tag     string // unique per scenario: client ids and topics
	prefix  string
	clients map[string]*confConn
	probe   *confConn
	nSent   int
}

func newConfRun(t *testing.T, b *confBroker, tag string) *confRun {
	return &confRun{t: t, broker: b, tag: tag, prefix: "cf/" + tag + "/", clients: make(map[string]*confConn)}
}

func (r *confRun) client(name string) *confConn {
	c, ok := r.clients[name]
	if !ok {
		c = newConfConn(name, r.prefix, "cs/"+r.tag+"/"+name)
		r.clients[name] = c
	}
	return c
}

// topic prefixes a scenario's topic or filter; a shared subscription keeps its $share/group/.
func (r *confRun) topic(s string) string {
	if rest, ok := strings.CutPrefix(s, "$share/"); ok {
		group, filter, _ := strings.Cut(rest, "/")
		return "$share/" + group + "/" + r.prefix + filter
	}
	return r.prefix + s
}

// run runs the steps, then settles and closes every connection.
func (r *confRun) run(steps []confStep) confOutcome {
	for i, s := range steps {
		if err := r.step(s); err != nil {
			r.t.Logf("%s: step %d: %v", r.broker.name, i+1, err)
			if s.client != "" {
				r.client(s.client).event("step %d: %v", i+1, err)
			}
		}
	}
	if err := r.settle(); err != nil {
		r.t.Logf("%s: final settle: %v", r.broker.name, err)
	}
	for _, c := range r.clients {
		c.hangUp(nil)
	}
	if r.probe != nil {
		r.probe.hangUp(nil)
	}
	return confOutcome(r.clients)
}

func (r *confRun) step(s confStep) error {
	var c *confConn
	if s.client != "" {
		c = r.client(s.client)
	}
	switch s.op {
	case opConnect:
		return r.connect(c, s.conn)
	case opSubscribe:
		o, id := s.subOpts, r.id(c, s)
		o.Filter = r.topic(s.filter)
		if err := c.send(c.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
			PacketID: id, Filters: packets.Subscriptions{o}})); err != nil {
			return err
		}
		ack, err := c.answer(packets.Suback, id)
		if err != nil {
			return err
		}
		c.event("SUBACK % x", ack.ReasonCodes)
	case opUnsubscribe:
		id := r.id(c, s)
		if err := c.send(c.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1},
			PacketID: id, Filters: packets.Subscriptions{{Filter: r.topic(s.filter)}}})); err != nil {
			return err
		}
		ack, err := c.answer(packets.Unsuback, id)
		if err != nil {
			return err
		}
		if c.version == 5 {
			c.event("UNSUBACK % x", ack.ReasonCodes)
		}
	case opPublish:
		return r.publish(c, s)
	case opRelease:
		if err := c.send(c.ack(packets.Pubrel, s.id)); err != nil {
			return err
		}
		if _, err := c.answer(packets.Pubcomp, s.id); err != nil {
			return err
		}
		return r.ping(c)
	case opWithhold:
		c.mu.Lock()
		c.withhold = true
		c.mu.Unlock()
	case opAck:
		return c.ackPending()
	case opDisconnect:
		c.hangUp(rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: c.version}))
	case opDisconnectWill:
		c.hangUp(rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: 5,
			ReasonCode: 0x04}))
	case opDrop:
		c.hangUp(nil)
	case opRestart:
		for _, c := range r.clients {
			c.mu.Lock()
			c.expected = true
			c.mu.Unlock()
		}
		r.broker.restart(r.t)
		for _, c := range r.clients {
			c.hangUp(nil)
		}
		r.probe = nil
	case opSettle:
		return r.settle()
	case opAwait:
		topic := s.topic
		if !c.waitUntil(harness.Timeout, func() bool {
			n := 0
			for _, m := range c.msgs {
				if m.Topic == topic {
					n++
				}
			}
			return n >= s.n
		}) {
			return fmt.Errorf("no %d messages on %s within %s", s.n, topic, harness.Timeout)
		}
	case opElapse:
		time.Sleep(s.d) // time that must pass for an expiry; nothing waits on it
	}
	return nil
}

// id is the packet id of a step: its own, or one the broker chose (a deliberate clash), once
// the message that carries it has come.
func (r *confRun) id(c *confConn, s confStep) uint16 {
	if s.recent != 0 {
		c.mu.Lock()
		defer c.mu.Unlock()
		if n := len(c.recvIDs); n >= s.recent {
			return c.recvIDs[n-s.recent]
		}
		return s.id
	}
	if s.theirs == 0 {
		return s.id
	}
	var id uint16
	if !c.waitUntil(harness.Timeout, func() bool {
		if len(c.recvIDs) >= s.theirs {
			id = c.recvIDs[s.theirs-1]
		}
		return id != 0 || c.closed
	}) || id == 0 {
		c.event("no message %d to take the packet id of", s.theirs)
		return s.id
	}
	return id
}

func (r *confRun) connect(c *confConn, o confConnect) error {
	if c.connected() {
		c.hangUp(nil)
	}
	pk := rawmqtt.Connect{ID: r.tag + "-" + c.name, Version: o.version, Clean: o.clean, KeepAlive: 60,
		WillTopic: o.will, WillPayload: []byte(o.willPayload), WillQoS: o.willQoS, WillRetain: o.willRetain}.Packet()
	if o.will != "" {
		pk.Connect.WillTopic = r.topic(o.will)
		pk.Connect.WillProperties.WillDelayInterval = o.willDelay
	}
	if o.version == 5 {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = o.expiry, o.expiry != 0
		pk.Properties.ReceiveMaximum = o.receiveMax
		pk.Properties.MaximumPacketSize = o.maxPacket
	}
	ack, err := c.dial(r.broker.addr, pk, o.withhold)
	if err != nil {
		return err
	}
	c.event("CONNACK present=%v %#02x", ack.SessionPresent, ack.ReasonCode)
	if ack.ReasonCode != 0 || ack.SessionPresent {
		return nil // a resumed session keeps its sentinel subscription
	}
	if err := c.send(c.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID: 1, Filters: packets.Subscriptions{{Filter: c.sentinelTopic}}})); err != nil {
		return err
	}
	if ack, err := c.answer(packets.Suback, 1); err != nil || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != 0 {
		return fmt.Errorf("sentinel subscription: SUBACK % x, %v", ack.ReasonCodes, err)
	}
	return nil
}

// publish sends a PUBLISH and completes its flow (unless holdRel), then a PINGREQ: its PINGRESP
// says the broker has handed the message to every subscriber (both brokers process one
// connection's packets in order), so a sentinel sent after it comes after it.
func (r *confRun) publish(c *confConn, s confStep) error {
	id := r.id(c, s)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: s.qos, Retain: s.retain},
		TopicName: r.topic(s.topic), PacketID: id, Payload: []byte(s.payload)}
	pk.Properties.MessageExpiryInterval = s.expiry
	if s.qos == 0 {
		pk.PacketID = 0
	}
	if err := c.send(c.encode(pk)); err != nil {
		return err
	}
	switch s.qos {
	case 1:
		ack, err := c.answer(packets.Puback, id)
		if err != nil {
			return err
		}
		c.ackCode("PUBACK", ack.ReasonCode)
	case 2:
		rec, err := c.answer(packets.Pubrec, id)
		if err != nil {
			return err
		}
		c.ackCode("PUBREC", rec.ReasonCode)
		if s.holdRel || rec.ReasonCode >= 0x80 {
			break
		}
		if err := c.send(c.ack(packets.Pubrel, id)); err != nil {
			return err
		}
		if _, err := c.answer(packets.Pubcomp, id); err != nil {
			return err
		}
	}
	return r.ping(c)
}

// ackCode records an acknowledgement's reason code other than success.
func (c *confConn) ackCode(name string, code byte) {
	if code != 0 {
		c.event("%s %#02x", name, code)
	}
}

func (r *confRun) ping(c *confConn) error {
	if err := c.send(rawmqtt.Pingreq()); err != nil {
		return err
	}
	_, err := c.answer(packets.Pingresp, 0)
	return err
}

// settle sends each connected client a QoS 0 sentinel on its own topic, from a probe client,
// and waits until each got it: what was handed to a client before has reached it. A PINGREQ
// from each client first makes the broker process what the client sent (acknowledgements that
// free a Receive Maximum slot or a queued message); while messages keep coming (and being
// acknowledged), it settles again.
func (r *confRun) settle() error {
	count := func() (n int) {
		for _, c := range r.clients {
			c.mu.Lock()
			n += len(c.msgs)
			c.mu.Unlock()
		}
		return n
	}
	for range 100 {
		before := count()
		if err := r.settleOnce(); err != nil {
			return err
		}
		if count() == before {
			return nil
		}
	}
	return errors.New("messages still coming after 100 sentinels")
}

func (r *confRun) settleOnce() error {
	if r.probe == nil || !r.probe.connected() {
		r.probe = newConfConn("probe", r.prefix, "")
		if _, err := r.probe.dial(r.broker.addr, rawmqtt.Connect{ID: r.tag + "-probe", Clean: true, KeepAlive: 60}.Packet(), false); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
	}
	r.nSent++
	token := fmt.Sprint("sentinel-", r.nSent)
	var waiting []*confConn
	for _, name := range sortedKeys(r.clients) {
		c := r.clients[name]
		if !c.connected() {
			continue
		}
		if err := r.ping(c); err != nil {
			c.event("settle: %v", err)
			continue
		}
		if err := r.probe.send(rawmqtt.Publish(c.sentinelTopic, 0, 0, []byte(token))); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		waiting = append(waiting, c)
	}
	for _, c := range waiting {
		if !c.waitUntil(harness.Timeout, func() bool { return c.sentinel[token] || c.closed }) {
			c.event("sentinel not received within %s", harness.Timeout)
		}
	}
	return nil
}

// sortedKeys is m's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// allowance is a difference between brokers that MQTT allows, and how to make the two outcomes
// comparable despite it.
type allowance struct {
	clause string
	// normalise rewrites one client's messages and events so that every allowed answer looks the same.
	normalise func(msgs []confMsg, events []string) ([]confMsg, []string)
}

// allowedDifferences is every difference between mqttserver and Mosquitto that the suite
// accepts. A scenario names those it may show in allow.
var allowedDifferences = map[string]allowance{
	"overlapping copies": {
		clause: "MQTT 5 §3.3.4 [MQTT-3.3.4-2]; 3.1.1 §3.3.5: a message matching several subscriptions of one client " +
			"is delivered at the highest of their QoS; the server MAY send further copies, one per subscription",
		normalise: func(msgs []confMsg, events []string) ([]confMsg, []string) {
			best := make(map[string]int) // topic=payload: index of the highest QoS copy
			var out []confMsg
			for _, m := range msgs {
				k := m.Topic + "=" + m.Payload
				if i, ok := best[k]; ok {
					out[i].QoS = max(out[i].QoS, m.QoS)
					continue
				}
				best[k] = len(out)
				out = append(out, m)
			}
			return out, events
		},
	},
	"no matching subscribers": {
		clause: "MQTT 5 §3.4.2.1: a server that knows a message has no subscribers MAY answer 0x10 instead of 0x00",
		normalise: func(msgs []confMsg, events []string) ([]confMsg, []string) {
			return msgs, slices.DeleteFunc(slices.Clone(events), func(e string) bool {
				return e == "PUBACK 0x10" || e == "PUBREC 0x10"
			})
		},
	},
	"server shutting down": {
		clause: "MQTT 5 §3.14: the server MAY send DISCONNECT (0x8B server shutting down) before it closes the connection",
		normalise: func(msgs []confMsg, events []string) ([]confMsg, []string) {
			return msgs, slices.DeleteFunc(slices.Clone(events), func(e string) bool {
				return e == "DISCONNECT from the broker 0x8b"
			})
		},
	},
	"mosquitto: overlapping qos, 3.1.1": {
		clause: "a slip of the oracle: MQTT-3.3.5-1 says the highest QoS of the matching subscriptions; Mosquitto 2.0.11 " +
			"delivers to a 3.1.1 client once, at the QoS of the exact (non-wildcard) subscription when there is one " +
			"(compared without QoS; the other overlapping scenarios check the QoS)",
		normalise: func(msgs []confMsg, events []string) ([]confMsg, []string) {
			out := slices.Clone(msgs)
			for i := range out {
				out[i].QoS = 0
			}
			return out, events
		},
	},
	"shared subscription member": {
		clause: "MQTT 5 §4.8.2: each message of a shared subscription goes to one session of the group, " +
			"which one is the server's choice (compared as the group's messages, in no order)",
		normalise: func(msgs []confMsg, events []string) ([]confMsg, []string) {
			out := slices.Clone(msgs)
			sort.SliceStable(out, func(i, j int) bool { return out[i].String() < out[j].String() })
			return out, events
		},
	},
}

// confView is one client's outcome as compared: messages grouped by topic and QoS (the order MQTT
// promises), and its events in order.
type confView struct {
	msgs   []confMsg
	events []string
}

// view applies the scenario's allowed differences and the fields it compares.
func (sc confScenario) view(t *testing.T, broker string, name string, msgs []confMsg, events []string) confView {
	for i := range msgs {
		if !sc.compareDup {
			msgs[i].Dup = false
		}
		msgs[i].HasExpiry = sc.compareExpiry && msgs[i].Expiry != 0
		msgs[i].Expiry = 0
	}
	allow := append([]string{"no matching subscribers", "server shutting down"}, sc.allow...)
	for _, a := range allow {
		d, ok := allowedDifferences[a]
		if !ok {
			t.Fatalf("scenario %s allows %q, which is not in allowedDifferences", sc.name, a)
		}
		m, e := d.normalise(msgs, events)
		if !slices.Equal(m, msgs) || !slices.Equal(e, events) {
			t.Logf("%s, %s: allowed difference %q applied (%s)", broker, name, a, d.clause)
		}
		msgs, events = m, e
	}
	return confView{msgs: msgs, events: events}
}

// byTopicQoS is the messages of one topic and QoS, in the order received.
func (v confView) byTopicQoS() map[string][]string {
	out := make(map[string][]string)
	for _, m := range v.msgs {
		k := fmt.Sprintf("%s q%d", m.Topic, m.QoS)
		out[k] = append(out[k], m.String())
	}
	return out
}

// views gives each client's view; shared-group members are one client, "shared".
func (sc confScenario) views(t *testing.T, broker string, o confOutcome) map[string]confView {
	out := make(map[string]confView)
	var group []confMsg
	for _, name := range sortedKeys(o) {
		c := o[name]
		c.mu.Lock()
		msgs, events := slices.Clone(c.msgs), slices.Clone(c.events)
		c.mu.Unlock()
		if slices.Contains(sc.shared, name) {
			group = append(group, msgs...)
			msgs = nil
		}
		out[name] = sc.view(t, broker, name, msgs, events)
	}
	if len(sc.shared) > 0 {
		scShared := sc
		scShared.allow = append(slices.Clone(sc.allow), "shared subscription member")
		out["shared"] = scShared.view(t, broker, "shared group", group, nil)
	}
	return out
}

// compare returns the differences between our outcome and Mosquitto's, and what either lacks of
// the scenario's wants.
func (sc confScenario) compare(t *testing.T, ours, theirs confOutcome) []string {
	vo, vm := sc.views(t, "mqttserver", ours), sc.views(t, "mosquitto", theirs)
	var diffs []string
	for _, name := range sortedKeys(vm) {
		o, m := vo[name], vm[name]
		if !slices.Equal(o.events, m.events) {
			diffs = append(diffs, fmt.Sprintf("%s: events differ\n\tmqttserver: %q\n\tmosquitto:  %q", name, o.events, m.events))
		}
		bo, bm := o.byTopicQoS(), m.byTopicQoS()
		for _, k := range sortedKeys(mergeKeys(bo, bm)) {
			if !slices.Equal(bo[k], bm[k]) {
				diffs = append(diffs, fmt.Sprintf("%s: messages on %s differ\n\tmqttserver: %q\n\tmosquitto:  %q", name, k, bo[k], bm[k]))
			}
		}
	}
	for _, name := range sortedKeys(sc.want) {
		for broker, o := range map[string]confOutcome{"mqttserver": ours, "mosquitto": theirs} {
			got := make(map[string]bool)
			if c := o[name]; c != nil {
				for _, m := range c.received() {
					got[m.Topic+"="+m.Payload] = true
				}
			}
			for _, w := range sc.want[name] {
				if !got[w] {
					diffs = append(diffs, fmt.Sprintf("%s: %s never received %s", broker, name, w))
				}
			}
		}
	}
	return diffs
}

func mergeKeys(a, b map[string][]string) map[string]bool {
	out := make(map[string]bool)
	for k := range maps.Keys(a) {
		out[k] = true
	}
	for k := range maps.Keys(b) {
		out[k] = true
	}
	return out
}

// transcript is every client's messages and events, for a failure message.
func transcript(o confOutcome) string {
	var b strings.Builder
	for _, name := range sortedKeys(o) {
		c := o[name]
		c.mu.Lock()
		ids := make([]uint16, len(c.msgs))
		for i, m := range c.msgs {
			ids[i] = m.id
		}
		pad := strings.Repeat(" ", len(name))
		fmt.Fprintf(&b, "\t%s: messages %q\n\t%s  packet ids %v\n\t%s  events %q\n", name, c.msgs, pad, ids, pad, c.events)
		c.mu.Unlock()
	}
	return b.String()
}

// TestConformance runs every scenario against mqttserver and Mosquitto and compares.
func TestConformance(t *testing.T) {
	harness.Mosquitto(t)
	// the scenarios that do not restart share one broker of each kind
	ours, theirs := startConfOurs(t, false), startConfMosquitto(t, false)
	strict := os.Getenv("CONFORMANCE_STRICT") != ""
	for i, sc := range conformanceScenarios {
		t.Run(sc.name, func(t *testing.T) {
			tag := fmt.Sprintf("s%d", i)
			var got, want confOutcome
			if sc.restart {
				// one after the other: a restart fails the test from its goroutine
				got = newConfRun(t, startConfOurs(t, true), tag).run(sc.steps)
				want = newConfRun(t, startConfMosquitto(t, true), tag).run(sc.steps)
			} else {
				if sc.waits() {
					t.Parallel() // mostly waiting for the brokers' clocks
				}
				var wg sync.WaitGroup
				wg.Go(func() { got = newConfRun(t, ours, tag).run(sc.steps) })
				want = newConfRun(t, theirs, tag).run(sc.steps)
				wg.Wait()
			}
			diffs := sc.compare(t, got, want)
			if len(diffs) == 0 {
				if sc.waitsFor != "" {
					t.Logf("passes, yet marked as waiting for %s: remove the mark", sc.waitsFor)
				}
				return
			}
			report := fmt.Sprintf("%s\n--- mqttserver:\n%s--- mosquitto:\n%s", strings.Join(diffs, "\n"), transcript(got), transcript(want))
			if sc.waitsFor != "" && !strict {
				t.Skipf("waits for %s (CONFORMANCE_STRICT=1 fails it):\n%s", sc.waitsFor, report)
			}
			t.Errorf("differs from Mosquitto:\n%s", report)
		})
	}
}
