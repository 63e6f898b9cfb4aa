package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"mqttdemo/tests/harness"
)

// TestDebugQoS2 runs a QoS 2 message from the publisher to the subscriber, both with -debug (the
// subscriber with -json too), each through a proxy that keeps a copy of the bytes, on our broker
// and on Mosquitto. The packets each client reports must be exactly those on the wire, in order,
// both ways, and show the four packets of QoS 2 with one packet id; the password given with
// -password goes on the wire but never on the screen.
func TestDebugQoS2(t *testing.T) {
	const password = "pw-never-shown-7"
	eachBroker(t, func(t *testing.T, url string) {
		b := harness.Build(t)
		subTap, pubTap := startTap(t, hostPort(url)), startTap(t, hostPort(url))
		sub, subOut := harness.StartSplit(t, "mqttsubscriber", b.Subscriber, nil,
			"-broker", subTap.url, "-topic", "debug/qos2", "-qos", "2", "-count", "1", "-debug", "-json")
		sub.WaitFor(t, `SUBSCRIBED`)
		pub := harness.Start(t, "mqttpublisher", b.Publisher, nil,
			"-broker", pubTap.url, "-topic", "debug/qos2", "-qos", "2", "-count", "1", "-message", "hello",
			"-debug", "-username", "alice", "-password", password)
		for _, p := range []*harness.Proc{pub, sub} {
			if code := p.Exit(t); code != 0 {
				t.Fatalf("%s: exit status %d", p.Name, code)
			}
		}
		pubWire, subWire := pubTap.wait(t), subTap.wait(t)

		pubSaw := debugLines(t, pub.Out.String())
		subSaw := debugObjects(t, subOut.String())
		sameAsWire(t, "publisher", pubSaw, pubWire)
		sameAsWire(t, "subscriber", subSaw, subWire)
		qos2Flow(t, "publisher", pubSaw, "out", "in")
		qos2Flow(t, "subscriber", subSaw, "in", "out")

		if !bytes.Contains(pubWire.out, []byte(password)) {
			t.Errorf("the password is not in the CONNECT on the wire: the test proves nothing")
		}
		if strings.Contains(pub.Out.String(), password) {
			t.Errorf("the publisher shows the password:\n%s", pub.Out.String())
		}
		if !strings.Contains(pub.Out.String(), "user alice, password (not shown)") {
			t.Errorf("the CONNECT line should say a password was sent:\n%s", pub.Out.String())
		}
	})
}

// seen is one packet as a client reported it or as the wire carried it.
type seen struct {
	dir, typ string
	id       uint16
	qos      int // PUBLISH only; -1 otherwise
	dup      bool
}

func (s seen) String() string {
	q := ""
	if s.qos >= 0 {
		q = fmt.Sprintf(" qos %d dup %t", s.qos, s.dup)
	}
	return fmt.Sprintf("%s %s id %d%s", s.dir, s.typ, s.id, q)
}

// debugLineRE is a -debug console line: "12:00:00.000 PACKET OUT   PUBLISH     id 1, qos 2, dup 0, …".
var debugLineRE = regexp.MustCompile(`PACKET (OUT|IN)\s+([A-Z]+)\s*(.*)$`)

func debugLines(t *testing.T, out string) []seen {
	t.Helper()
	var all []seen
	for _, l := range strings.Split(out, "\n") {
		m := debugLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		s := seen{dir: strings.ToLower(m[1]), typ: m[2], qos: -1}
		for _, f := range strings.Split(m[3], ", ") {
			switch k, v, _ := strings.Cut(f, " "); k {
			case "id":
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("bad id in %q", l)
				}
				s.id = uint16(n)
			case "qos":
				s.qos, _ = strconv.Atoi(v)
			case "dup":
				s.dup = v == "1"
			}
		}
		all = append(all, s)
	}
	return all
}

func debugObjects(t *testing.T, out string) []seen {
	t.Helper()
	var all []seen
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var o struct {
			Direction string `json:"direction"`
			Packet    string `json:"packet"`
			ID        uint16 `json:"id"`
			QoS       *int   `json:"qos"`
			Dup       bool   `json:"dup"`
		}
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("not JSON on stdout: %q: %v", sc.Text(), err)
		}
		if o.Packet == "" {
			continue // a message
		}
		s := seen{dir: o.Direction, typ: o.Packet, id: o.ID, qos: -1, dup: o.Dup}
		if o.QoS != nil {
			s.qos = *o.QoS
		}
		all = append(all, s)
	}
	return all
}

// sameAsWire checks that the client reported, in each direction, the packets the wire carried.
func sameAsWire(t *testing.T, who string, reported []seen, w wire) {
	t.Helper()
	for _, dir := range []string{"out", "in"} {
		var got []seen
		for _, s := range reported {
			if s.dir == dir {
				got = append(got, s)
			}
		}
		want := w.decode(t, dir)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s, packets %s:\nreported %v\non the wire %v", who, dir, got, want)
		}
	}
}

// qos2Flow checks PUBLISH, PUBREC, PUBREL, PUBCOMP in that order, in the directions of the
// client's role, all with the PUBLISH's packet id.
func qos2Flow(t *testing.T, who string, reported []seen, publishDir, ackDir string) {
	t.Helper()
	flow := []struct{ typ, dir string }{{"PUBLISH", publishDir}, {"PUBREC", ackDir}, {"PUBREL", publishDir}, {"PUBCOMP", ackDir}}
	var id uint16
	step := 0
	for _, s := range reported {
		if step == len(flow) || s.typ != flow[step].typ {
			continue
		}
		if s.dir != flow[step].dir {
			t.Errorf("%s: %v goes the wrong way", who, s)
		}
		if step == 0 {
			id = s.id
			if s.qos != 2 || id == 0 {
				t.Errorf("%s: %v, want a QoS 2 PUBLISH with an id", who, s)
			}
		} else if s.id != id {
			t.Errorf("%s: %v, want id %d", who, s, id)
		}
		step++
	}
	if step != len(flow) {
		t.Errorf("%s: QoS 2 flow stopped after %d of 4 packets: %v", who, step, reported)
	}
}

// wire is what a tap copied: client to broker (out) and broker to client (in).
type wire struct{ out, in []byte }

func (w wire) decode(t *testing.T, dir string) []seen {
	t.Helper()
	data := w.out
	if dir == "in" {
		data = w.in
	}
	var all []seen
	r := bytes.NewReader(data)
	for r.Len() > 0 {
		cp, err := packets.ReadPacket(r)
		if err != nil {
			t.Fatalf("the %s bytes on the wire do not decode: %v", dir, err)
		}
		s := seen{dir: dir, qos: -1}
		switch p := cp.(type) {
		case *packets.PublishPacket:
			s.typ, s.qos, s.dup = "PUBLISH", int(p.Qos), p.Dup
			if p.Qos > 0 {
				s.id = p.MessageID
			}
		default:
			s.typ, s.id = packetName(cp), cp.Details().MessageID
		}
		all = append(all, s)
	}
	return all
}

func packetName(cp packets.ControlPacket) string {
	// String starts with the fixed header, which starts with the name: "PUBREC: dup: false …".
	name, _, _ := strings.Cut(cp.String(), ":")
	return name
}

// tap is a one-connection proxy to a broker that keeps a copy of the bytes both ways.
type tap struct {
	url      string
	mu       sync.Mutex
	out, in  bytes.Buffer
	finished chan struct{}
}

func startTap(t *testing.T, target string) *tap {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{url: "tcp://" + l.Addr().String(), finished: make(chan struct{})}
	var mu sync.Mutex
	var conns []net.Conn
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	go func() {
		defer close(tp.finished)
		c, err := l.Accept()
		l.Close() // one connection: a reconnect would fail the test, not pass unseen
		if err != nil {
			return
		}
		keep(c)
		up, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		keep(up)
		var wg sync.WaitGroup
		copyInto := func(dst, src net.Conn, buf *bytes.Buffer) {
			defer wg.Done()
			_, _ = io.Copy(io.MultiWriter(dst, lockedBuffer{&tp.mu, buf}), src)
			// Pass the end on, half-closed, so that the other way still delivers what is in flight.
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
		}
		wg.Add(2)
		go copyInto(up, c, &tp.out)
		go copyInto(c, up, &tp.in)
		wg.Wait()
		c.Close()
		up.Close()
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		<-tp.finished
	})
	return tp
}

// wait waits until both ends have closed and returns the bytes.
func (tp *tap) wait(t *testing.T) wire {
	t.Helper()
	select {
	case <-tp.finished:
	case <-time.After(harness.Timeout):
		t.Fatal(errors.New("the tapped connection did not close"))
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return wire{out: bytes.Clone(tp.out.Bytes()), in: bytes.Clone(tp.in.Bytes())}
}

type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (b lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// TestPublisherJSON: the publisher's -json, as the subscriber's: stdout holds only JSON objects,
// one per message once the broker has it (after its PUBCOMP at QoS 2) and, with -debug, one per
// packet, exactly those on the wire; the console lines (CONNECTED, SUMMARY) go to stderr.
func TestPublisherJSON(t *testing.T) {
	eachBroker(t, func(t *testing.T, url string) {
		b := harness.Build(t)
		tp := startTap(t, hostPort(url))
		pub, stdout := harness.StartSplit(t, "mqttpublisher", b.Publisher, nil,
			"-broker", tp.url, "-topic", "json/pub", "-qos", "2", "-count", "2", "-interval", "0",
			"-message", `m{n} "<>"`, "-json", "-debug")
		if code := pub.Exit(t); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		sameAsWire(t, "publisher", debugObjects(t, stdout.String()), tp.wait(t))
		type outcome struct {
			N        int       `json:"n"`
			Topic    string    `json:"topic"`
			Payload  string    `json:"payload"`
			QoS      int       `json:"qos"`
			Retained bool      `json:"retained"`
			Status   string    `json:"status"`
			At       time.Time `json:"at"`
			AckMS    *float64  `json:"acknowledged_ms"`
		}
		var msgs []outcome
		completed := map[uint16]bool{}
		var published []uint16 // ids of the PUBLISHes, in order
		for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			var pk struct {
				Packet, Direction string
				ID                uint16
			}
			if err := json.Unmarshal([]byte(l), &pk); err != nil {
				t.Fatalf("stdout line %q is not JSON: %v", l, err)
			}
			switch {
			case pk.Packet == "PUBLISH":
				published = append(published, pk.ID)
			case pk.Packet == "PUBCOMP":
				completed[pk.ID] = true
			case pk.Packet == "":
				var m outcome
				dec := json.NewDecoder(strings.NewReader(l))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&m); err != nil {
					t.Fatalf("stdout line %q is not a message object: %v", l, err)
				}
				if n := len(msgs); n >= len(published) || !completed[published[n]] {
					t.Errorf("message %q printed before its PUBCOMP:\n%s", l, stdout)
				}
				msgs = append(msgs, m)
			}
		}
		if len(msgs) != 2 {
			t.Fatalf("got %d message objects, want 2:\n%s", len(msgs), stdout)
		}
		for i, m := range msgs {
			want := fmt.Sprintf(`m%d "<>"`, i+1)
			if m.N != i+1 || m.Topic != "json/pub" || m.Payload != want || m.QoS != 2 || m.Retained ||
				m.Status != "acknowledged" || m.AckMS == nil || *m.AckMS < 0 || time.Since(m.At) > time.Minute {
				t.Errorf("unexpected message %+v", m)
			}
		}
		if !strings.Contains(stdout.String(), `"payload":"m1 \"<>\""`) {
			t.Errorf("payload not escaped as plain JSON:\n%s", stdout)
		}
		for _, tag := range []string{"CONNECTED", "SUMMARY"} {
			if !strings.Contains(pub.Out.String(), tag) {
				t.Errorf("no %s line on stderr:\n%s", tag, pub.Out.String())
			}
		}
	})
}
