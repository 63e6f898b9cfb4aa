// Package load is the benchmark's load generator: what drives a broker. A lean MQTT client
// (wire.go) makes the sessions that flood a broker or publish to it at a fixed rate and count
// what it delivers (load.go), and the idle connections whose memory is measured (idle.go). It
// knows nothing of which broker it drives or how the results are reported.
package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// Scenario is who publishes and who subscribes: all on one topic, or with Topics each subscriber
// on its own topic and the publishers going round them.
type Scenario struct {
	Name       string
	Pubs, Subs int
	Topics     bool
	// Tools: driven by mosquitto_pub -l and mosquitto_sub (RunMosquittoClients), not by Session.
	Tools bool
}

var (
	OneToOne  = Scenario{Name: "1→1", Pubs: 1, Subs: 1}
	FanIn     = Scenario{Name: "4→1", Pubs: 4, Subs: 1}
	FanOut    = Scenario{Name: "1→10", Pubs: 1, Subs: 10}
	FanOut100 = Scenario{Name: "1→100", Pubs: 1, Subs: 100}
	// NoSub is many publishers and nobody subscribed, as a widely used Go MQTT load tool runs
	// by default: the cost of taking messages in, without the cost of handing them out.
	NoSub = Scenario{Name: "20→0", Pubs: 20}
	// Trickle is many mostly idle clients: 1,000 subscribers on topics of their own, one
	// publisher going round them at a low rate.
	Trickle = Scenario{Name: "1→1000 topics", Pubs: 1, Subs: 1000, Topics: true}
	// MosquittoTools is one mosquitto_pub -l feeding one mosquitto_sub.
	MosquittoTools = Scenario{Name: "mosquitto_pub→sub", Pubs: 1, Subs: 1, Tools: true}
)

// Workload is one measured case: a flood (Rate 0, Count 0), an open-loop fixed rate in msg/s,
// or a fixed count of messages per publisher.
type Workload struct {
	Scn  Scenario
	QoS  byte
	Size int // payload bytes
	Rate int // total published msg/s; 0 = closed-loop flood
	// Count: each publisher sends this many messages, each in a write of its own, as fast as
	// Inflight allows; the run ends when the broker has taken every one (all PUBACK/PUBCOMP
	// received; QoS 0: the PINGRESP to a PINGREQ sent after them) and every delivery arrived.
	Count int
	// Window and Inflight override FloodWindow and FloodInflight for this case (0: those).
	Window   uint64
	Inflight int64
	// Fresh: measured on a broker started for this run alone, whose RSS at the end of the run
	// is part of the result (a broker that ran the floods before holds memory they left).
	Fresh bool
}

// String names the case in the log and the report, e.g. "flood 1→1 QoS1 64B" (-only matches it).
func (w Workload) String() string {
	mode := "flood "
	switch {
	case w.Scn.Tools:
		mode = ""
	case w.Rate > 0 && w.Rate%1000 == 0:
		mode = fmt.Sprintf("%dk/s ", w.Rate/1000)
	case w.Rate > 0:
		mode = fmt.Sprintf("%d/s ", w.Rate)
	case w.Count > 0:
		mode = fmt.Sprintf("%d each ", w.Count)
	}
	return fmt.Sprintf("%s%s QoS%d %s", mode, w.Scn.Name, w.QoS, sizeName(w.Size))
}

func (w Workload) window() uint64 {
	if w.Window > 0 {
		return w.Window
	}
	return FloodWindow
}

func (w Workload) inflight() int64 {
	if w.Inflight > 0 {
		return w.Inflight
	}
	return FloodInflight
}

func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dKB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// Result is what one run of a workload against one broker measured. Session.Run fills in the
// counts and Elapsed; the caller adds Latencies (from Session.Latencies, after Close) and the
// broker's CPU.
type Result struct {
	Sent      int64           // messages published
	Expected  int64           // deliveries expected: Sent × subscribers of a topic
	Delivered int64           // deliveries received
	Elapsed   time.Duration   // first publish to last delivery (Count: or to the last completion)
	Latencies []time.Duration // rate mode: one per delivery
	CPU       time.Duration   // broker user+system CPU during the run
	RSS       int64           // Fresh workloads: the broker's RSS in bytes at the end of the run
}

// Messages is what the throughput counts: deliveries, or where nobody subscribes, the messages
// published (with Count, every one taken by the broker: Run waits for that).
func (r Result) Messages() int64 {
	if r.Expected == 0 {
		return r.Sent
	}
	return r.Delivered
}

// Throughput is Messages per second over Elapsed.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Messages()) / r.Elapsed.Seconds()
}

// Payload header: publisher index, sequence number (from 1), send time (ns since clockBase).
const headerLen = 18

var clockBase = time.Now()

func now() int64 { return int64(time.Since(clockBase)) }

// FloodWindow bounds, per publisher, the messages sent but not yet seen by every subscriber. It
// makes the flood closed-loop (a broker is measured at the rate it delivers, not at the rate it
// can queue) and stays below every broker's per-client queue: Mosquitto queues 1000 QoS 1/2
// messages (+20 in flight), mochi 1024 in flight and 8192 pending writes; fan-in puts 4×200 on
// one subscriber.
var FloodWindow uint64 = 200

// stallTimeout is how long a publisher waits on a full window before sending anyway (the broker
// dropped the tail of the window, which no later delivery would acknowledge). Long, so that a
// broker that is merely slow on a loaded machine is never pushed past its queue limits.
const stallTimeout = 2 * time.Second

type subscriber struct {
	c        *mqttConn
	lastSeq  []atomic.Uint64 // per publisher: highest sequence number received
	received atomic.Int64
	lastRecv atomic.Int64
	record   bool
	lat      []time.Duration // written by loop only; read after it returns
	notify   []chan struct{} // per publisher: "the window may have moved"
}

func (s *subscriber) loop() error {
	pending := 0
	var pk packets.Packet // reused: decoding into it allocates nothing
	for {
		fh, body, err := s.c.in.Next()
		if err != nil {
			return err
		}
		switch fh.Type {
		case packets.Publish:
			pk.FixedHeader, pk.PacketID = fh, 0
			if err := pk.PublishDecode(body); err != nil {
				return err
			}
			payload := pk.Payload
			if len(payload) < headerLen {
				return errors.New("payload without benchmark header")
			}
			t := now()
			pub := binary.BigEndian.Uint16(payload)
			seq := binary.BigEndian.Uint64(payload[2:])
			if s.record {
				s.lat = append(s.lat, time.Duration(t-int64(binary.BigEndian.Uint64(payload[10:]))))
			}
			if int(pub) < len(s.lastSeq) && seq > s.lastSeq[pub].Load() {
				s.lastSeq[pub].Store(seq)
			}
			s.received.Add(1)
			s.lastRecv.Store(t)
			switch fh.Qos {
			case 1:
				s.c.writeAck(packets.Puback, pk.PacketID)
				pending++
			case 2:
				s.c.writeAck(packets.Pubrec, pk.PacketID)
				pending++
			}
		case packets.Pubrel:
			s.c.writeAck(packets.Pubcomp, binary.BigEndian.Uint16(body))
			pending++
		}
		// Acknowledge in batches, but never sit on acks a broker may be waiting for (Mosquitto
		// sends at most 20 QoS 1/2 messages before it needs acks).
		if s.c.r.Buffered() == 0 || pending >= 8 {
			if pending > 0 {
				err := s.c.flush()
				if err != nil {
					return err
				}
				pending = 0
			}
			for _, n := range s.notify {
				select {
				case n <- struct{}{}:
				default:
				}
			}
		}
	}
}

type publisher struct {
	c        *mqttConn
	idx      uint16
	inflight atomic.Int64 // QoS 1/2 publishes the broker has not completed
	notify   chan struct{}
	pong     chan struct{} // a PINGRESP arrived
	done     atomic.Int64  // Count: when the broker had taken every message (now())
}

// ackLoop handles the broker's PUBACK, PUBREC (answered by PUBREL) and PUBCOMP.
func (p *publisher) ackLoop() error {
	pending := 0
	for {
		fh, body, err := p.c.in.Next()
		if err != nil {
			return err
		}
		switch fh.Type {
		case packets.Puback, packets.Pubcomp:
			p.inflight.Add(-1)
		case packets.Pubrec:
			p.c.mu.Lock()
			p.c.writeAck(packets.Pubrel, binary.BigEndian.Uint16(body))
			p.c.mu.Unlock()
			pending++
		case packets.Pingresp:
			select {
			case p.pong <- struct{}{}:
			default:
			}
		}
		if pending > 0 && (p.c.r.Buffered() == 0 || pending >= 8) {
			err := p.c.flush()
			if err != nil {
				return err
			}
			pending = 0
		}
		select {
		case p.notify <- struct{}{}:
		default:
		}
	}
}

// maxInflight keeps packet identifiers unique: far below the 65535 available.
const maxInflight = 30000

// FloodInflight bounds a flood publisher's QoS 1/2 publishes not yet acknowledged by the broker
// (PUBACK, PUBCOMP), as clients do (MQTT 5 calls it receive maximum). 20 is Mosquitto's
// max_inflight_messages: above it Mosquitto 2.0 drops incoming QoS 2 messages it has already
// acknowledged with PUBREC (measured: 60% lost with 100 in flight).
var FloodInflight int64 = 20

// countTimeLimit bounds a Count run: its publishers stop there, sent or not.
const countTimeLimit = time.Minute

// Session is the connected clients of one run.
type Session struct {
	w      Workload
	topics []string // one, or with Scn.Topics one per subscriber
	limit  uint64   // flood: stop after this many messages per publisher (0: only the time)
	subs   []*subscriber
	pubs   []*publisher
	wg     sync.WaitGroup

	closing  atomic.Bool
	failOnce sync.Once
	failed   chan struct{} // closed on the first client error
	err      error
}

// fail records the first error of a client goroutine and wakes everyone waiting.
func (s *Session) fail(err error) {
	if err == nil || s.closing.Load() {
		return
	}
	s.failOnce.Do(func() { s.err = err; close(s.failed) })
}

// Connect connects the workload's subscribers, each subscribed to bench/runID (with Topics,
// bench/runID/i), and its publishers to the broker at addr, and starts reading what they receive.
func Connect(ctx context.Context, addr string, w Workload, runID string) (*Session, error) {
	if w.Scn.Tools {
		return nil, errors.New("a Tools scenario runs through RunMosquittoClients")
	}
	s := &Session{w: w, failed: make(chan struct{}), limit: uint64(w.Count)}
	s.topics = []string{"bench/" + runID}
	if w.Scn.Topics {
		s.topics = make([]string, w.Scn.Subs)
		for i := range s.topics {
			s.topics[i] = fmt.Sprintf("bench/%s/%d", runID, i)
		}
	}
	for i := 0; i < w.Scn.Pubs; i++ {
		s.pubs = append(s.pubs, &publisher{idx: uint16(i), notify: make(chan struct{}, 1), pong: make(chan struct{}, 1)})
	}
	// Hundreds of subscribers get small buffers (a packet larger than one is still read whole)
	// and come from 8 source addresses, as idle connections do.
	bufSize, many := 64<<10, w.Scn.Subs > 100
	if many {
		bufSize = 4 << 10
	}
	s.subs = make([]*subscriber, w.Scn.Subs)
	err := forEach(w.Scn.Subs, func(i int) error {
		var local net.Addr
		if many {
			local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%8))}
		}
		c, err := dialMQTT(ctx, addr, local, fmt.Sprintf("%s-s%d", runID, i), bufSize)
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		sub := &subscriber{c: c, lastSeq: make([]atomic.Uint64, w.Scn.Pubs), record: w.Rate > 0}
		for _, p := range s.pubs {
			sub.notify = append(sub.notify, p.notify)
		}
		s.subs[i] = sub
		if err := c.subscribe(s.topics[i%len(s.topics)], w.QoS); err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	for i, p := range s.pubs {
		c, err := dialMQTT(ctx, addr, nil, fmt.Sprintf("%s-p%d", runID, i), 64<<10)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("publisher %d: %w", i, err)
		}
		p.c = c
	}
	for _, sub := range s.subs {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.fail(fmt.Errorf("subscriber: %w", sub.loop())) }()
	}
	for _, p := range s.pubs {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.fail(fmt.Errorf("publisher: %w", p.ackLoop())) }()
	}
	return s, nil
}

// Close disconnects every client and waits until their readers have stopped.
func (s *Session) Close() {
	s.closing.Store(true)
	for _, p := range s.pubs {
		if p.c != nil {
			p.c.close()
		}
	}
	for _, sub := range s.subs {
		if sub != nil {
			sub.c.close()
		}
	}
	s.wg.Wait()
}

// forEach runs f(0) … f(n-1) on up to 16 goroutines and returns the first error; after one, the
// indices not yet started are skipped.
func forEach(n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first atomic.Pointer[error]
	)
	for range min(n, 16) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n && first.Load() == nil; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return *err
	}
	return nil
}

// Run publishes for d (Count: until every publisher has sent its count, at most countTimeLimit)
// and waits for the deliveries to drain.
func (s *Session) Run(ctx context.Context, d time.Duration) (Result, error) {
	if s.w.Count > 0 {
		d = countTimeLimit
	}
	var sent atomic.Int64
	start := now()
	var wg sync.WaitGroup
	pubErr := make(chan error, len(s.pubs))
	for _, p := range s.pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			var err error
			if s.w.Rate > 0 {
				n, err = s.publishRate(p, d)
			} else {
				n, err = s.flood(p, d)
			}
			sent.Add(n)
			pubErr <- err
		}()
	}
	wg.Wait()
	close(pubErr)
	for err := range pubErr {
		if err != nil {
			return Result{}, err
		}
	}
	select {
	case <-s.failed:
		return Result{}, s.err
	default:
	}
	// Each message goes to the subscribers of its topic.
	r := Result{Sent: sent.Load(), Expected: sent.Load() * int64(len(s.subs)/len(s.topics))}
	// Drain: until everything arrived, or nothing arrived for a while (the broker dropped it).
	deadline := time.Now().Add(15 * time.Second)
	last, lastChange := int64(-1), time.Now()
	for time.Now().Before(deadline) {
		got := s.delivered()
		if got >= r.Expected {
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > 500*time.Millisecond {
			break
		}
		select {
		case <-s.failed:
			return Result{}, s.err
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	r.Delivered = s.delivered()
	var end int64
	for _, sub := range s.subs {
		end = max(end, sub.lastRecv.Load())
	}
	for _, p := range s.pubs {
		end = max(end, p.done.Load())
	}
	r.Elapsed = time.Duration(end - start)
	return r, nil
}

func (s *Session) delivered() int64 {
	var n int64
	for _, sub := range s.subs {
		n += sub.received.Load()
	}
	return n
}

// Latencies gathers the subscribers' samples; call after Close.
func (s *Session) Latencies() []time.Duration {
	var all []time.Duration
	for _, sub := range s.subs {
		all = append(all, sub.lat...)
	}
	return all
}

func fillHeader(payload []byte, pub uint16, seq uint64) {
	binary.BigEndian.PutUint16(payload, pub)
	binary.BigEndian.PutUint64(payload[2:], seq)
	binary.BigEndian.PutUint64(payload[10:], uint64(now()))
}

func packetID(seq uint64) uint16 { return uint16(seq%65535) + 1 }

// flood publishes as fast as the window allows for d, or with Count that many messages; it
// returns the number sent.
func (s *Session) flood(p *publisher, d time.Duration) (int64, error) {
	payload := make([]byte, s.w.Size)
	head := newPublishHead(s.topics[0], s.w.QoS, len(payload))
	window, inflight := s.w.window(), s.w.inflight()
	full := func(seq, seen uint64) bool {
		return len(s.subs) > 0 && seq-seen >= window || p.inflight.Load() >= inflight
	}
	end := time.Now().Add(d)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var seq, seen uint64
	for {
		if seq%32 == 0 && time.Now().After(end) || s.limit > 0 && seq >= s.limit {
			break
		}
		// Wait while the window is full.
		for full(seq, seen) {
			if seen = s.minSeen(p.idx); !full(seq, seen) {
				break
			}
			err := p.c.flush()
			if err != nil {
				return int64(seq), err
			}
			if time.Since(end) > 10*time.Second {
				return int64(seq), fmt.Errorf("no progress for 10s: %d sent, %d seen by every subscriber, %d unacknowledged", seq, seen, p.inflight.Load())
			}
			timer.Reset(stallTimeout)
			stalled := false
			select {
			case <-p.notify:
			case <-timer.C:
				stalled = true
			case <-s.failed:
				return int64(seq), s.err
			}
			if !timer.Stop() && !stalled {
				select {
				case <-timer.C:
				default:
				}
			}
			if seen = s.minSeen(p.idx); stalled && seq-seen >= window {
				seen = seq // give up on the lost tail; later deliveries move the window again
			}
		}
		seq++
		fillHeader(payload, p.idx, seq)
		if s.w.QoS > 0 {
			p.inflight.Add(1) // before the write: its acknowledgement may come back at once
		}
		p.c.mu.Lock()
		err := p.c.writePublish(head, packetID(seq), payload)
		if err == nil && s.w.Count > 0 {
			err = p.c.w.Flush() // each message a write of its own, as such clients write
		}
		p.c.mu.Unlock()
		if err != nil {
			return int64(seq), err
		}
	}
	if err := p.c.flush(); err != nil {
		return int64(seq), err
	}
	if s.w.Count == 0 {
		return int64(seq), nil
	}
	if seq < s.limit {
		return int64(seq), fmt.Errorf("only %d of %d messages sent in %s", seq, s.limit, d)
	}
	return int64(seq), s.awaitTaken(p)
}

// awaitTaken waits until the broker has taken everything p sent: every QoS 1/2 publish
// acknowledged, or at QoS 0 the answer to a PINGREQ sent after them (a broker reads a
// connection's packets in order). It records when in p.done.
func (s *Session) awaitTaken(p *publisher) error {
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	wake := p.notify
	if s.w.QoS == 0 {
		p.c.mu.Lock()
		p.c.w.Write(rawmqtt.Pingreq())
		err := p.c.w.Flush()
		p.c.mu.Unlock()
		if err != nil {
			return err
		}
		wake = p.pong
	}
	for s.w.QoS > 0 && p.inflight.Load() > 0 || s.w.QoS == 0 && p.done.Load() == 0 {
		select {
		case <-wake:
			if s.w.QoS == 0 {
				p.done.Store(now())
			}
		case <-deadline.C:
			return fmt.Errorf("the broker has not taken every message after 10s: %d unacknowledged", p.inflight.Load())
		case <-s.failed:
			return s.err
		}
	}
	if s.w.QoS > 0 {
		p.done.Store(now())
	}
	return nil
}

func (s *Session) minSeen(pub uint16) uint64 {
	m := ^uint64(0)
	for _, sub := range s.subs {
		m = min(m, sub.lastSeq[pub].Load())
	}
	return m
}

// publishRate publishes at this publisher's share of the workload's rate for d, open loop: the
// schedule does not wait for deliveries. Each message carries the time it was written.
func (s *Session) publishRate(p *publisher, d time.Duration) (int64, error) {
	payload := make([]byte, s.w.Size)
	heads := make([]publishHead, len(s.topics))
	for i, t := range s.topics {
		heads[i] = newPublishHead(t, s.w.QoS, len(payload))
	}
	perPub := float64(s.w.Rate) / float64(len(s.pubs))
	n := int64(perPub * d.Seconds())
	interval := time.Duration(float64(time.Second) / perPub)
	start := time.Now()
	for i := int64(0); i < n; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if p.inflight.Load() >= maxInflight {
			return i, errors.New("broker stopped acknowledging QoS 1/2 publishes")
		}
		seq := uint64(i + 1)
		fillHeader(payload, p.idx, seq)
		p.c.mu.Lock()
		err := p.c.writePublish(heads[i%int64(len(heads))], packetID(seq), payload)
		if err == nil {
			err = p.c.w.Flush() // one message, one write: latency is not hidden in a buffer
		}
		p.c.mu.Unlock()
		if err != nil {
			return i, err
		}
		if s.w.QoS > 0 {
			p.inflight.Add(1)
		}
	}
	return n, nil
}
