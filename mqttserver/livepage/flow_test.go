package livepage

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

func pub(topic string, qos byte, id uint16, dup bool, payload string) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Dup: dup},
		TopicName: topic, PacketID: id, Payload: []byte(payload)}
}

func ack(typ byte, id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id}
}

// flowLine is a packet as the tests compare it.
func flowLine(fp FlowPacket) string {
	s := fmt.Sprintf("%s %s id=%d qos=%d", fp.Dir, fp.Type, fp.ID, fp.QoS)
	if fp.Dup {
		s += " dup"
	}
	if fp.Topic != "" {
		s += " " + fp.Topic
	}
	return s
}

// TestFlowCapturesOnlyWatchedClients: the packets of the client a page watches (its id exactly)
// are kept in order with their ids, QoS 2's four packets and a resend's DUP; none are kept, and
// the outbound hooks are not even provided, when no page watches.
func TestFlowCapturesOnlyWatchedClients(t *testing.T) {
	p := New(mqtt.New(nil), new(LineRing))
	cl := &mqtt.Client{ID: "car-1"}
	other := &mqtt.Client{ID: "car-10"}
	if p.Provides(mqtt.OnPacketSent) || p.Provides(mqtt.OnWillSent) {
		t.Error("OnPacketSent or OnWillSent provided while no page watches")
	}
	p.OnPacketRead(cl, pub("a", 1, 1, false, "x"))
	if p.watched.Load() != nil || len(p.watches) != 0 {
		t.Fatal("something watched before any page asked")
	}

	c := p.watch("car-1")
	if !p.Provides(mqtt.OnPacketSent) || !p.Provides(mqtt.OnWillSent) {
		t.Error("OnPacketSent or OnWillSent not provided while a page watches")
	}
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ClientIdentifier: "car-1", Keepalive: 30, Clean: true,
			UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: []byte("s3cret")}}
	p.OnPacketRead(&mqtt.Client{}, connect) // mochi sets cl.ID after reading the CONNECT
	p.OnPacketSent(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}, nil)
	p.OnPacketRead(cl, pub("cars/1", 2, 7, false, "hello"))
	p.OnPacketRead(other, pub("cars/10", 2, 7, false, "not mine")) // another client: not captured
	p.OnPacketSent(cl, ack(packets.Pubrec, 7), nil)
	p.OnPacketRead(cl, ack(packets.Pubrel, 7))
	p.OnPacketSent(cl, ack(packets.Pubcomp, 7), nil)
	p.OnPacketSent(cl, pub("cmd/1", 1, 3, false, "go"), nil)
	p.OnPacketSent(cl, pub("cmd/1", 1, 3, true, "go"), nil) // the resend
	p.OnPacketRead(cl, ack(packets.Puback, 3))
	p.OnPacketRead(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	p.OnWillSent(cl, pub("will/1", 0, 0, false, "gone"))
	p.OnDisconnect(cl, nil, false)

	got, skipped, last := c.since(0)
	var lines []string
	for i, fp := range got {
		if fp.Seq != uint64(i+1) {
			t.Errorf("packet %d has Seq %d", i, fp.Seq)
		}
		lines = append(lines, flowLine(fp))
	}
	want := []string{
		"in CONNECT id=0 qos=0",
		"out CONNACK id=0 qos=0",
		"in PUBLISH id=7 qos=2 cars/1",
		"out PUBREC id=7 qos=0",
		"in PUBREL id=7 qos=0",
		"out PUBCOMP id=7 qos=0",
		"out PUBLISH id=3 qos=1 cmd/1",
		"out PUBLISH id=3 qos=1 dup cmd/1",
		"in PUBACK id=3 qos=0",
		"in DISCONNECT id=0 qos=0",
		"note WILL id=0 qos=0 will/1",
		"note CLOSED id=0 qos=0",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") || skipped != 0 || last != uint64(len(want)) {
		t.Errorf("captured (skipped %d, last %d):\n%s\nwant:\n%s", skipped, last, strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if d := got[0].Detail; d != "client id car-1, keepalive 30s, clean, user u" {
		t.Errorf("CONNECT detail %q", d)
	}
	if got[2].Payload != "hello" || got[2].Bytes != 5 {
		t.Errorf("PUBLISH payload %q, %d bytes", got[2].Payload, got[2].Bytes)
	}
	if all, _ := json.Marshal(got); strings.Contains(string(all), "s3cret") {
		t.Error("the CONNECT's password was captured")
	}

	p.unwatch("car-1")
	if p.watched.Load() != nil || p.Provides(mqtt.OnPacketSent) {
		t.Error("still watching after the last page left")
	}
	p.OnPacketRead(cl, pub("cars/1", 1, 8, false, "late"))
	if _, _, last := c.since(0); last != uint64(len(want)) {
		t.Error("captured after the last page left")
	}
}

// TestFlowIsBounded: a watched client keeps its last flowKept packets; the ones before are counted.
func TestFlowIsBounded(t *testing.T) {
	p := New(mqtt.New(nil), new(LineRing))
	c := p.watch("a")
	cl := &mqtt.Client{ID: "a"}
	for i := range flowKept + 10 {
		p.OnPacketRead(cl, pub("t", 1, uint16(i+1), false, ""))
	}
	got, skipped, last := c.since(0)
	if len(got) != flowKept || skipped != 10 || got[0].ID != 11 || got[0].Seq != 11 || last != flowKept+10 {
		t.Errorf("%d kept from id %d (seq %d), %d skipped, last %d", len(got), got[0].ID, got[0].Seq, skipped, last)
	}
	if got, skipped, _ := c.since(last - 2); len(got) != 2 || skipped != 0 || got[1].ID != flowKept+10 {
		t.Errorf("since(last-2): %d packets, %d skipped", len(got), skipped)
	}
	// Two streams on one client share its capture, which ends with the second.
	p.watch("a")
	p.unwatch("a")
	if p.watched.Load() == nil {
		t.Error("the capture ended while a stream still watches")
	}
	p.unwatch("a")
	if len(p.watches) != 0 {
		t.Error("the capture outlived its streams")
	}
}

// TestFlowCostsNoAllocationUnwatched: the packet hooks allocate nothing for a client no page
// watches, whether another is watched or none is.
func TestFlowCostsNoAllocationUnwatched(t *testing.T) {
	p := New(mqtt.New(nil), new(LineRing))
	cl := &mqtt.Client{ID: "busy"}
	pk := pub("t", 1, 1, false, "payload")
	if n := testing.AllocsPerRun(1000, func() { p.OnPacketRead(cl, pk) }); n != 0 {
		t.Errorf("OnPacketRead allocates %v times a packet when no page watches", n)
	}
	p.watch("quiet")
	if n := testing.AllocsPerRun(1000, func() { p.OnPacketRead(cl, pk); p.OnPacketSent(cl, pk, nil) }); n != 0 {
		t.Errorf("the packet hooks allocate %v times a packet of a client nobody watches", n)
	}
}

// TestFlowHidesPayloadsAViewerMayNotRead: the "packets" event of a stream with ?watch= shows a
// payload only to a viewer who may read its topic (MayRead, the -auth rules); the size still.
func TestFlowHidesPayloadsAViewerMayNotRead(t *testing.T) {
	p := New(mqtt.New(nil), new(LineRing))
	p.CheckUser = func(_, _, _ string) bool { return true }
	p.MayRead = func(user, topic string) bool { return user == "boss" || strings.HasPrefix(topic, "public/") }
	mux := http.NewServeMux()
	p.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	flows := map[string]chan Flow{}
	for _, user := range []string{"boss", "guest"} {
		req, _ := http.NewRequest("GET", srv.URL+"/events?watch=car%201", nil)
		req.SetBasicAuth(user, "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		ch := make(chan Flow, 16)
		flows[user] = ch
		go func() {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(nil, 1<<20)
			name := ""
			for sc.Scan() {
				line := sc.Text()
				if ev, ok := strings.CutPrefix(line, "event: "); ok {
					name = ev
				} else if data, ok := strings.CutPrefix(line, "data: "); ok && name == "packets" {
					var f Flow
					if json.Unmarshal([]byte(data), &f) == nil {
						ch <- f
					}
				}
			}
		}()
	}
	next := func(user string) Flow {
		t.Helper()
		select {
		case f := <-flows[user]:
			return f
		case <-time.After(10 * time.Second):
			t.Fatalf("no packets event for %s", user)
			return Flow{}
		}
	}
	for _, user := range []string{"boss", "guest"} { // the first, empty: both streams watch
		if f := next(user); f.Client != "car 1" || len(f.Packets) != 0 {
			t.Fatalf("first event of %s: %+v", user, f)
		}
	}
	cl := &mqtt.Client{ID: "car 1"}
	p.OnPacketRead(cl, pub("public/news", 0, 0, false, "hello"))
	p.OnPacketRead(cl, pub("private/diary", 0, 0, false, "secret"))
	// A topic shortened for the page names no topic a rule can be asked about: hidden from all.
	p.OnPacketRead(cl, pub("public/"+strings.Repeat("x", 200), 0, 0, false, "long"))
	for user, want := range map[string][3]string{"boss": {"hello", "secret", ""}, "guest": {"hello", "", ""}} {
		var got []FlowPacket
		for len(got) < 3 {
			got = append(got, next(user).Packets...)
		}
		if got[0].Payload != want[0] || got[1].Payload != want[1] || got[1].Hidden != (want[1] == "") || got[1].Bytes != 6 {
			t.Errorf("%s sees %+v, want payloads %q", user, got, want)
		}
		if got[2].Payload != "" || !got[2].Hidden {
			t.Errorf("%s sees the payload of a shortened topic: %+v", user, got[2])
		}
	}
}

// BenchmarkFlowHooks is what the packet flow adds to each packet read and written: nobody
// watching, another client watched, and this client watched (captured).
//
//	go test -run '^$' -bench FlowHooks mqttdemo/mqttserver/livepage
func BenchmarkFlowHooks(b *testing.B) {
	for _, c := range []struct{ name, watch string }{{"nobody-watching", ""}, {"other-watched", "other"}, {"this-watched", "busy"}} {
		b.Run(c.name, func(b *testing.B) {
			p := New(mqtt.New(nil), new(LineRing))
			if c.watch != "" {
				p.watch(c.watch)
			}
			cl := &mqtt.Client{ID: "busy"}
			pk := pub("bench/msg", 1, 1, false, strings.Repeat("x", 64))
			b.ReportAllocs()
			for b.Loop() {
				// As mochi calls them: Provides first.
				if p.Provides(mqtt.OnPacketRead) {
					_, _ = p.OnPacketRead(cl, pk)
				}
				if p.Provides(mqtt.OnPacketSent) {
					p.OnPacketSent(cl, pk, nil)
				}
			}
		})
	}
}
