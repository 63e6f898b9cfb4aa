package livepage

import (
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The packet flow: a page may watch one client (GET /events?watch=ID, the id matched exactly)
// and see the last packets between it and the broker, drawn as a sequence diagram. Packets are
// captured only while a page watches their client: when none does, the hooks cost one atomic
// load (OnPacketRead) or nothing (OnPacketSent and OnWillSent are not provided).
const (
	flowKept    = 50    // packets kept per watched client
	flowFilters = 8     // filters of a SUBSCRIBE or UNSUBSCRIBE shown
	maxClientID = 65535 // MQTT's longest string: a longer id cannot be a client's
)

// FlowPacket is one packet between the watched client and the broker, or a note of the broker's
// own (a will it published, the connection closing).
type FlowPacket struct {
	Seq     uint64    `json:"seq"` // from 1, in the order captured
	Time    time.Time `json:"time"`
	Dir     string    `json:"dir"`  // "in": client to broker; "out": broker to client; "note"
	Type    string    `json:"type"` // CONNECT, PUBLISH, …; WILL or CLOSED for a note
	ID      uint16    `json:"id,omitempty"`
	QoS     byte      `json:"qos,omitempty"`
	Dup     bool      `json:"dup,omitempty"` // a resend
	Retain  bool      `json:"retain,omitempty"`
	Topic   string    `json:"topic,omitempty"`
	Bytes   int       `json:"bytes,omitempty"` // of the payload
	Payload string    `json:"payload,omitempty"`
	Hidden  bool      `json:"hidden,omitempty"` // the payload, from a viewer who may not read Topic
	Detail  string    `json:"detail,omitempty"` // the rest, as text (never a password)
	// topicCut: Topic is the topic shortened, on which no read rule can be asked: its payload
	// is hidden from every viewer.
	topicCut bool
}

// Flow is the "packets" event of a stream that watches a client: the packets captured since the
// last one, and how many of them were not kept (more than flowKept between two events).
type Flow struct {
	Client  string       `json:"client"`
	Packets []FlowPacket `json:"packets"`
	Skipped uint64       `json:"skipped,omitempty"`
}

// capture keeps the last flowKept packets of one watched client.
type capture struct {
	streams int // watching it, under Page.watchMu

	mu    sync.Mutex
	ring  [flowKept]FlowPacket
	total uint64 // captured so far; the last one's Seq
}

func (c *capture) add(fp FlowPacket) {
	fp.Time = time.Now()
	c.mu.Lock()
	c.total++
	fp.Seq = c.total
	c.ring[c.total%flowKept] = fp
	c.mu.Unlock()
}

// since returns the packets after Seq n that are still kept, how many after n are gone, and the
// last Seq.
func (c *capture) since(n uint64) (out []FlowPacket, skipped, last uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if first := c.total - min(c.total, flowKept); n < first {
		skipped, n = first-n, first
	}
	for n < c.total {
		n++
		out = append(out, c.ring[n%flowKept])
	}
	return out, skipped, c.total
}

// watch starts capturing id's packets for one more stream; unwatch ends it. The hooks read the
// watched clients from an immutable copy of the map, so they take no lock.
func (p *Page) watch(id string) *capture {
	p.watchMu.Lock()
	defer p.watchMu.Unlock()
	c := p.watches[id]
	if c == nil {
		c = &capture{}
		p.watches[id] = c
	}
	c.streams++
	p.publishWatches()
	return c
}

func (p *Page) unwatch(id string) {
	p.watchMu.Lock()
	defer p.watchMu.Unlock()
	if c := p.watches[id]; c != nil {
		if c.streams--; c.streams <= 0 {
			delete(p.watches, id)
		}
	}
	p.publishWatches()
}

// publishWatches hands the hooks a copy of the watches, or nil when there is none.
func (p *Page) publishWatches() {
	if len(p.watches) == 0 {
		p.watched.Store(nil)
		return
	}
	m := make(map[string]*capture, len(p.watches))
	for id, c := range p.watches {
		m[id] = c
	}
	p.watched.Store(&m)
}

// captureFor is the capture of cl's packets, or nil when no page watches cl.
func (p *Page) captureFor(cl *mqtt.Client, pk *packets.Packet) *capture {
	w := p.watched.Load()
	if w == nil || cl.Net.Inline {
		return nil
	}
	id := cl.ID
	if pk != nil && pk.FixedHeader.Type == packets.Connect { // read before mochi sets cl.ID
		id = pk.Connect.ClientIdentifier
	}
	return (*w)[id]
}

// OnPacketSent captures a packet written to a watched client. Provided only while a page
// watches a client: mochi asks Provides before each call.
func (p *Page) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if c := p.captureFor(cl, &pk); c != nil {
		c.add(describe(&pk, "out"))
	}
}

// OnWillSent notes the will the broker published for a watched client.
func (p *Page) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if c := p.captureFor(cl, nil); c != nil {
		fp := describe(&pk, "note")
		fp.Type, fp.Detail = "WILL", "the broker published the client's will"
		c.add(fp)
	}
}

// noteClosed notes that a watched client's connection ended, and why.
func (p *Page) noteClosed(cl *mqtt.Client, err error) {
	if c := p.captureFor(cl, nil); c != nil {
		detail := "connection closed"
		if err != nil {
			detail += ": " + err.Error()
		}
		c.add(FlowPacket{Dir: "note", Type: "CLOSED", Detail: detail})
	}
}

// describe turns a packet into what the diagram shows. The payload is kept cut to PayloadShown
// bytes; the stream leaves it out for a viewer who may not read the topic. A CONNECT's password
// and will payload are never kept.
func describe(pk *packets.Packet, dir string) FlowPacket {
	fh := pk.FixedHeader
	fp := FlowPacket{Dir: dir, Type: strings.ToUpper(packets.PacketNames[fh.Type]), ID: pk.PacketID}
	var detail []string
	code := func() {
		if pk.ReasonCode != 0 {
			detail = append(detail, fmt.Sprintf("reason 0x%02x", pk.ReasonCode))
		}
	}
	switch fh.Type {
	case packets.Publish:
		fp.QoS, fp.Dup, fp.Retain = fh.Qos, fh.Dup, fh.Retain
		fp.Topic = cut(pk.TopicName)
		fp.topicCut = fp.Topic != pk.TopicName
		fp.Bytes = len(pk.Payload)
		fp.Payload = shorten(pk.Payload, len(pk.Payload))
		if fh.Qos == 0 {
			fp.ID = 0
		}
	case packets.Connect:
		c := pk.Connect
		detail = append(detail, "client id "+cut(c.ClientIdentifier), fmt.Sprintf("keepalive %ds", c.Keepalive))
		if c.Clean {
			detail = append(detail, "clean")
		}
		if c.UsernameFlag {
			detail = append(detail, "user "+cut(string(c.Username)))
		}
		if c.WillFlag {
			detail = append(detail, fmt.Sprintf("will to %s (QoS %d)", cut(c.WillTopic), c.WillQos))
		}
	case packets.Connack:
		if pk.ReasonCode == 0 {
			detail = append(detail, "accepted")
		}
		code()
		if pk.SessionPresent {
			detail = append(detail, "session present")
		}
	case packets.Subscribe, packets.Unsubscribe:
		for i, f := range pk.Filters {
			if i == flowFilters {
				detail = append(detail, fmt.Sprintf("and %d more", len(pk.Filters)-i))
				break
			}
			s := cut(f.Filter)
			if fh.Type == packets.Subscribe {
				s += fmt.Sprintf(" (QoS %d)", f.Qos)
			}
			detail = append(detail, s)
		}
	case packets.Suback, packets.Unsuback:
		for i, rc := range pk.ReasonCodes {
			if i == flowFilters {
				detail = append(detail, fmt.Sprintf("and %d more", len(pk.ReasonCodes)-i))
				break
			}
			if rc < 0x80 && fh.Type == packets.Suback {
				detail = append(detail, fmt.Sprintf("granted QoS %d", rc))
			} else {
				detail = append(detail, fmt.Sprintf("0x%02x", rc))
			}
		}
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp, packets.Disconnect, packets.Auth:
		code()
	}
	fp.Detail = strings.Join(detail, ", ")
	return fp
}

// cut returns s cut as a payload is (shorten), with no copy when it is short enough.
func cut(s string) string {
	if len(s) <= PayloadShown {
		return s
	}
	return shorten([]byte(s[:PayloadShown]), len(s))
}

// mayRead tells whether v may see the payloads of topic: everyone on an open page.
func (p *Page) mayRead(v *viewer, topic string) bool {
	return v == nil || p.MayRead == nil || p.MayRead(v.user, topic)
}

// flowFor is the next "packets" event of a stream of v watching client, after Seq *next;
// nil when there is nothing new and the first event was sent.
func (p *Page) flowFor(v *viewer, client string, c *capture, next *uint64, first bool) *Flow {
	pks, skipped, last := c.since(*next)
	if len(pks) == 0 && skipped == 0 && !first {
		return nil
	}
	*next = last
	for i := range pks {
		if pks[i].Payload != "" && (pks[i].topicCut || !p.mayRead(v, pks[i].Topic)) {
			pks[i].Payload, pks[i].Hidden = "", true
		}
	}
	if pks == nil {
		pks = []FlowPacket{}
	}
	return &Flow{Client: client, Packets: pks, Skipped: skipped}
}
