package subscriber

import (
	"fmt"
	"sync"
	"testing"
)

// fakeMessage is an incoming message as paho hands it over.
type fakeMessage struct {
	topic, payload string
	qos            byte
	dup            bool
	id             uint16
	acks           *int
}

func (m fakeMessage) Duplicate() bool   { return m.dup }
func (m fakeMessage) Qos() byte         { return m.qos }
func (m fakeMessage) Retained() bool    { return false }
func (m fakeMessage) Topic() string     { return m.topic }
func (m fakeMessage) MessageID() uint16 { return m.id }
func (m fakeMessage) Payload() []byte   { return []byte(m.payload) }
func (m fakeMessage) Ack()              { *m.acks++ }

func payloads(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Payload)
	}
	return out
}

// TestInboxOrder: push never blocks, and take returns everything in arrival order, once.
func TestInboxOrder(t *testing.T) {
	b := newInbox()
	acks := 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // paho's goroutine
		defer wg.Done()
		for i := 0; i < 1000; i++ {
			b.push(fakeMessage{topic: "t", payload: fmt.Sprint(i), qos: 1, id: uint16(i + 1), acks: &acks})
		}
	}()
	var got []string
	for len(got) < 1000 {
		<-b.ready
		msgs, _ := b.take()
		got = append(got, payloads(msgs)...)
	}
	wg.Wait()
	for i, p := range got {
		if p != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: out of order", i, p)
		}
	}
	if msgs, _ := b.take(); len(msgs) != 0 {
		t.Errorf("%d messages taken twice", len(msgs))
	}
	if acks != 0 {
		t.Errorf("%d messages acknowledged before they were printed", acks)
	}
}

// TestInboxQoS2Resends: a QoS 2 resend is dropped (and acknowledged again) while its id is
// open and, marked DUP, after the broker released it; new messages on the same id pass.
func TestInboxQoS2Resends(t *testing.T) {
	b := newInbox()
	acks := 0
	msg := func(payload string, id uint16, dup bool) fakeMessage {
		return fakeMessage{topic: "t", payload: payload, qos: 2, id: id, dup: dup, acks: &acks}
	}
	steps := []struct {
		push    fakeMessage
		release uint16
		want    []string
		dups    int
	}{
		{push: msg("a", 1, false), want: []string{"a"}},
		{push: msg("a", 1, true), dups: 1},                          // resend before PUBREL
		{push: msg("b", 2, false), want: []string{"b"}},             // another id
		{release: 1, push: msg("a", 1, true), dups: 1},              // resend after PUBREL: the broker rolled back
		{push: msg("c", 1, false), want: []string{"c"}},             // a new message on a released id
		{release: 1, push: msg("c", 1, false), want: []string{"c"}}, // same content again, not DUP: a new message
		{push: msg("a", 3, true), want: []string{"a"}},              // DUP on an id never seen: print it
	}
	for i, s := range steps {
		if s.release != 0 {
			b.release(s.release)
		}
		b.push(s.push)
		msgs, dups := b.take()
		if fmt.Sprint(payloads(msgs)) != fmt.Sprint(s.want) || dups != s.dups {
			t.Errorf("step %d: took %v and %d duplicates, want %v and %d", i+1, payloads(msgs), dups, s.want, s.dups)
		}
	}
	if acks != 2 {
		t.Errorf("%d resends acknowledged, want 2 (the dropped ones)", acks)
	}
}
