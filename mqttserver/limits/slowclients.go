package limits

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
)

// Why this layer: mochi writes to a client's socket while holding the client's lock, and the
// publisher's goroutine takes that same lock for the next packet id of each QoS 1 or 2 copy.
// A client that stops reading fills its socket buffers, mochi's write blocks, and with it
// every publisher that sends it a message. So mochi is given connections whose Write never
// blocks: what the socket does not take at once waits in a per-connection buffer that a
// writer goroutine drains, started only while something waits. A connection whose reader
// falls behind loses its QoS 0 messages first, then is disconnected as a slow consumer.

// ErrSlowConsumer ends a client that read nothing of what waited for it for -slow-client-timeout,
// or let more than -max-queued-bytes wait unsent. Its disconnect line says "slow-consumer".
var ErrSlowConsumer error = slowConsumer{}

type slowConsumer struct{}

func (slowConsumer) Error() string            { return "slow consumer: the client stopped reading" }
func (slowConsumer) DisconnectReason() string { return "slow-consumer" }

// FlowControl holds the limits and the counters shared by the connections it wraps.
type FlowControl struct {
	server    *mqtt.Server
	traffic   *Traffic // the packets written, counted in Write (traffic.go)
	log       *slog.Logger
	timeout   time.Duration // no byte taken for this long: slow consumer; 0 never
	maxUnsent int           // unsent bytes past which the client is disconnected
	maxSize   int           // -max-packet-size, for packetwatch.go
	qos0      int           // unsent bytes past which QoS 0 messages to it are dropped
	dropped   *eventlog.LineCap
	slow      atomic.Int64 // slow consumers disconnected
	qos0Lost  atomic.Int64 // QoS 0 messages dropped, for /stats
}

// NewFlowControl returns the connection layer of server; its connections count what they
// write in traffic.
func NewFlowControl(server *mqtt.Server, l Limits, traffic *Traffic, log *slog.Logger) *FlowControl {
	f := &FlowControl{server: server, traffic: traffic, log: log, timeout: l.SlowClientTimeout,
		maxUnsent: l.MaxQueuedBytes, qos0: l.MaxQueuedBytes / 2, maxSize: l.MaxPacketSize,
		dropped: eventlog.NewLineCap(log, slog.LevelWarn, eventlog.MsgDropped, slog.String("reason", reasonNotReading))}
	f.qos0 = max(f.qos0, 1)
	return f
}

// reasonNotReading is why QoS 0 messages to a client that does not read, or reads more slowly
// than they come, are dropped.
const reasonNotReading = "client not reading"

// Listener hands mochi the connections of l wrapped.
func (f *FlowControl) Listener(l listeners.Listener) listeners.Listener {
	return flowListener{Listener: l, flow: f}
}

type flowListener struct {
	listeners.Listener
	flow *FlowControl
}

func (l flowListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		fc := l.flow.wrap(c)
		err := establish(id, fc)
		// mochi has closed fc, but what waited (a refusing CONNACK, a DISCONNECT with a reason)
		// may still be going out: the WebSocket listener closes the socket once this returns.
		fc.waitClosed(closeFlush + time.Second)
		return err
	})
}

// Close closes l, ending its clients without mochi's closer (server.closeListenerClients):
// that takes the clients' read lock twice (Clients.GetByListener calls Len under it, clients.go:95),
// so a client leaving meanwhile, whose Delete waits for the write lock, deadlocks both, and the
// broker hangs at shutdown. This one takes the lock once (GetAll copies the clients).
func (l flowListener) Close(listeners.CloseFn) {
	l.Listener.Close(l.flow.closeClients)
}

func (f *FlowControl) closeClients(listener string) {
	for _, cl := range f.server.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = f.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// wrap returns c with a Write that never blocks.
func (f *FlowControl) wrap(c net.Conn) *flowConn {
	fc := &flowConn{Conn: c, flow: f, socketClosed: make(chan struct{}), sizes: sizeWatch{limit: f.maxSize}}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			fc.raw, fc.rawWrite, fc.rawRead = raw, fc.writeNow, fc.readNow
		}
	}
	// The listener's connect deadline covers reading CONNECT; writes have their own below.
	_ = c.SetWriteDeadline(time.Time{})
	return fc
}

// dropQoS0 counts and logs a QoS 0 message not sent to the client on c.
func (f *FlowControl) dropQoS0(c *flowConn, topic string) {
	f.qos0Lost.Add(1)
	atomic.AddInt64(&f.server.Info.MessagesDropped, 1)
	if !f.dropped.Allow() {
		return
	}
	f.log.LogAttrs(context.Background(), slog.LevelWarn, eventlog.MsgDropped, slog.String("client", c.clientID()),
		slog.String("topic", topic), slog.String("reason", reasonNotReading))
}

// slowConsumer logs why c is being disconnected, with the count since the start.
func (f *FlowControl) slowConsumer(c *flowConn, why string, unsent int) {
	n := f.slow.Add(1)
	f.log.LogAttrs(context.Background(), slog.LevelWarn, "slow consumer disconnected", slog.String("client", c.clientID()),
		slog.String("reason", why), slog.Int("unsent_bytes", unsent), slog.Int64("slow_consumers", n))
}

// Hook is the mochi hook of the connections f wraps.
func (f *FlowControl) Hook() mqtt.Hook { return &flowHook{flow: f} }

// DroppedQoS0 counts the QoS 0 messages dropped for clients that fell behind, since the start;
// 0 for a nil FlowControl.
func (f *FlowControl) DroppedQoS0() int64 {
	if f == nil {
		return 0
	}
	return f.qos0Lost.Load()
}

// flowHook tells each connection its client's id, for the log lines, runs the drop summary, and
// refuses the CONNECT limits mochi cannot tell from absent (connectwatch.go).
type flowHook struct {
	mqtt.HookBase
	flow *FlowControl
}

func (*flowHook) ID() string           { return "flow-control" }
func (*flowHook) Provides(b byte) bool { return b == mqtt.OnSessionEstablish || b == mqtt.OnConnect }

func (h *flowHook) Init(any) error {
	h.flow.dropped.Start()
	return nil
}

func (h *flowHook) Stop() error {
	h.flow.dropped.Close()
	return nil
}

// OnSessionEstablish comes before mochi resends a session's queue, which may already be slow.
func (*flowHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if c, ok := cl.Net.Conn.(*flowConn); ok {
		c.id.Store(&cl.ID)
		c.v5.Store(cl.Properties.ProtocolVersion == 5)
	}
}

// While packets follow each other closely (within gatherWithin), Write leaves them to the writer
// goroutine, which gathers what waits into one socket write: a system call a packet cost a
// 1→1 QoS 1 flood a third of its rate. A lone packet still tries the socket at once.
const gatherWithin = time.Millisecond

// behindAfter is how long the writer's socket write may wait before the client counts as not
// reading. What waits for the writer is no sign of it: on a busy machine the writer may wait its
// turn while the socket would take everything.
const behindAfter = 20 * time.Millisecond

// epoch is the start of the monotonic times flowConn keeps as durations.
var epoch = time.Now()

// behind tells whether the client is not reading what it is sent: the socket has taken none of
// the writer's current write for behindAfter.
func (c *flowConn) behind(now time.Duration) bool {
	return since(c.writeSince.Load(), now) > behindAfter
}

// lagging tells whether the client reads less than it is sent: the writer has been writing its
// current list for behindAfter. A client that takes each part within behindAfter, but less than
// comes, is never behind, and QoS 1/2 copies would wait for it past -max-queued-bytes without
// end (TestQoS1PastTheBudgetEndsAReadingClient).
func (c *flowConn) lagging(now time.Duration) bool {
	return c.behind(now) || since(c.listSince.Load(), now) > behindAfter
}

// since is how long ago start (since epoch, 0 for none) was.
func since(start int64, now time.Duration) time.Duration {
	if start == 0 {
		return 0
	}
	return now - time.Duration(start)
}

// flowConn is a net.Conn whose Write copies what the socket does not take at once into pending,
// which a writer goroutine drains.
type flowConn struct {
	net.Conn
	raw syscall.RawConn // for a write that returns at once when the socket is full; nil off TCP
	// rawWrite is writeNow, bound once; wp, wn and werr are its input and results (under mu).
	rawWrite func(fd uintptr) bool
	wp       []byte
	wn       int
	werr     error
	flow     *FlowControl
	// Read's state, used only by mochi's reading goroutine.
	flowing bool // the last read filled mochi's buffer: more is likely waiting
	// drained: the last read took all the socket held, so what mochi writes next answers it
	// and nothing follows soon to gather it with (set by the reader, read by writers).
	drained  atomic.Bool
	aheadBuf *[readAhead]byte // from readAheadPool while it holds unread bytes
	ahead    []byte           // the unread bytes in aheadBuf
	rawRead  func(fd uintptr) bool
	rp       []byte
	rn       int
	rerr     error
	id       atomic.Pointer[string]
	v5       atomic.Bool  // MQTT 5, known once the session is established
	tagged   tagged       // the timed copy expected (latency.go; under mu)
	sizes    sizeWatch    // used by the reader only (packetwatch.go)
	connect  connectWatch // used by the reader only (connectwatch.go)

	// writeSince is when the writer's socket write began (since epoch), 0 between writes;
	// listSince when it began writing its current list, 0 between lists.
	writeSince atomic.Int64
	listSince  atomic.Int64

	mu        sync.Mutex
	lastWrite time.Duration // when mochi last wrote (since epoch)
	// pending are the packets waiting for the writer, as mochi wrote them: not copied, see
	// TestMochiWritesEachPacketInABufferOfItsOwn.
	pending net.Buffers
	unsent  int // bytes in pending
	// ownTail: pending's last slice is a chunk of this connection's, into which small packets
	// are copied (queue), not one of mochi's.
	ownTail bool
	spare   net.Buffers // the writer's last list, reused while it runs
	writing int         // bytes the writer holds
	running bool        // the writer goroutine
	closed  bool        // Close was called: the writer flushes, then closes
	err     error       // a failed connection: every later Write returns it

	socketClosed chan struct{} // closed once the socket is
	closeOnce    sync.Once
}

func (c *flowConn) clientID() string {
	if id := c.id.Load(); id != nil {
		return *id
	}
	return ""
}

func (c *flowConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	n := len(p)
	var tag uint16 // of the timed copy p is (latency.go)
	if c.tagged.tag != 0 && c.isTagged(p) {
		tag, c.tagged = c.tagged.tag, tagged{}
	}
	now := time.Since(epoch)
	gather := c.gathers(p, now)
	c.lastWrite = now
	// What goes out, counted as written: p less the QoS 0 copies dropped.
	sent := p
	if !c.running && c.raw != nil && !gather { // a lone packet: try the socket at once
		w, err := c.tryWrite(p)
		if err != nil {
			c.err = err
			return w, err
		}
		if w == n {
			c.count(sent, n, tag)
			return n, nil
		}
		p = p[w:] // the rest of a packet begun: it cannot be dropped
	} else if unsent := c.unsent + c.writing; unsent >= c.flow.qos0 && (c.behind(now) || unsent+len(p) > c.flow.maxUnsent && c.lagging(now)) {
		// Past half of -max-queued-bytes a QoS 0 copy goes while the socket takes nothing; past
		// all of it, once the writer has spent behindAfter on its list: a client that reads, but
		// more slowly than a burst comes, loses QoS 0 copies, not its connection
		// (mosquitto_pub -l into mosquitto_sub, 4 KB lines), and one that keeps up with a burst
		// larger than the budget loses nothing (four publishers of 4 KB into one subscriber).
		p = c.withoutQoS0(p)
		sent = p
	}
	// What already waits counts, not p: one packet (up to -max-packet-size, or a little more
	// for an MQTT 5 copy) may always go out, or a big message would end its subscriber at every
	// reconnect. Only something still to be queued ends a client: a write whose QoS 0 copies
	// were all dropped queues nothing.
	if unsent := c.unsent + c.writing; len(p) > 0 && unsent > c.flow.maxUnsent && c.lagging(now) {
		c.fail(ErrSlowConsumer)
		c.flow.slowConsumer(c, "-max-queued-bytes unsent", unsent)
		return 0, ErrSlowConsumer
	}
	c.count(sent, n, tag)
	if len(p) > 0 {
		c.queue(p)
	}
	if !c.running && len(c.pending) > 0 {
		c.running = true
		go c.drain()
	}
	return n, nil
}

// Small packets are copied into chunks: kept as mochi wrote them, each would hold its buffer
// (64 bytes at least) and a 24-byte slice header for a few bytes counted unsent, and a client
// sending PINGREQs it never reads the answers to would make the broker hold ~44 times
// -max-queued-bytes (TestUnsentBoundsMemory).
const (
	copyBelow = 512     // bytes: packets shorter than this are copied
	chunkSize = 4 << 10 // bytes of a chunk they are copied into
)

// gathers tells whether p is left to the writer goroutine, to go out with what follows: while
// mochi writes packets within gatherWithin of each other, but not an answer (PUBACK, PUBREC,
// SUBACK…) to the last of what the client sent: a client awaiting it sends nothing more, so
// handing it over only adds the writer's wake-up to every round trip (20 publishers each
// awaiting every PUBACK: 1.3× slower).
func (c *flowConn) gathers(p []byte, now time.Duration) bool {
	if now-c.lastWrite >= gatherWithin {
		return false
	}
	answer := len(p) > 0 && p[0]>>4 != packets.Publish
	return !answer || !c.drained.Load()
}

// queue adds p to pending (under mu).
func (c *flowConn) queue(p []byte) {
	c.unsent += len(p)
	if len(p) >= copyBelow {
		c.pending, c.ownTail = append(c.pending, p), false
		return
	}
	if last := len(c.pending) - 1; c.ownTail && cap(c.pending[last])-len(c.pending[last]) >= len(p) {
		c.pending[last] = append(c.pending[last], p...)
		return
	}
	c.pending, c.ownTail = append(c.pending, append(make([]byte, 0, chunkSize), p...)), true
}

// count counts the packets of sent, what goes out of the n bytes mochi wrote, and times the
// copy tagged unless something was dropped: mochi writes one packet at a time.
func (c *flowConn) count(sent []byte, n int, tag uint16) {
	c.flow.traffic.written(sent)
	if tag != 0 && len(sent) == n {
		c.flow.traffic.latency.observe(tag)
	}
}

// withoutQoS0 returns p, whole packets as mochi writes them, less its QoS 0 PUBLISH packets.
func (c *flowConn) withoutQoS0(p []byte) []byte {
	var kept []byte
	rest, from := p, 0
	for len(rest) > 0 {
		size, topic, qos0 := parsePacket(rest)
		if size <= 0 || size > len(rest) { // not whole packets: keep everything
			return p
		}
		if qos0 {
			if kept == nil {
				kept = make([]byte, 0, len(p))
			}
			kept = append(kept, p[from:len(p)-len(rest)]...)
			from = len(p) - len(rest) + size
			c.flow.dropQoS0(c, topic)
		}
		rest = rest[size:]
	}
	if kept == nil {
		return p
	}
	return append(kept, p[from:]...)
}

// parsePacket reads the fixed header at the start of b: the packet's whole size, and for a
// QoS 0 PUBLISH its topic. size is 0 when b does not start with a complete header.
func parsePacket(b []byte) (size int, topic string, qos0 bool) {
	size, h := fixedHeader(b)
	if size == 0 {
		return 0, "", false
	}
	if b[0]>>4 != packets.Publish || b[0]&0x06 != 0 {
		return size, "", false
	}
	if h+2 <= len(b) {
		if l := int(b[h])<<8 | int(b[h+1]); h+2+l <= len(b) {
			topic = string(b[h+2 : h+2+l])
		}
	}
	return size, topic, true
}

// drain writes pending until nothing waits, then ends; after Close it closes the socket.
func (c *flowConn) drain() {
	for {
		c.mu.Lock()
		if len(c.pending) == 0 || c.err != nil {
			closed := c.closed
			c.running, c.writing, c.pending, c.unsent, c.spare, c.ownTail = false, 0, nil, 0, nil, false // an idle connection holds no buffer
			if !closed && c.err == nil {
				_ = c.Conn.SetWriteDeadline(time.Time{}) // the next write may go straight to the socket
			}
			c.mu.Unlock()
			if closed {
				c.closeSocket(false)
			}
			return
		}
		out, writing := c.pending, c.unsent
		c.pending, c.unsent, c.spare, c.ownTail = c.spare[:0], 0, nil, false
		c.writing = writing
		c.mu.Unlock()

		err := c.writeAll(out)

		c.mu.Lock()
		clear(out) // the packets are written: let them go
		c.spare, c.writing = out[:0], 0
		if err != nil && c.err == nil {
			if errors.Is(err, ErrSlowConsumer) {
				c.flow.slowConsumer(c, "read nothing for -slow-client-timeout", writing+c.unsent)
			}
			c.fail(err)
		}
		c.mu.Unlock()
	}
}

// writeAll writes out, each socket write with a deadline: a reader that takes nothing for the
// timeout is a slow consumer; one that takes something gets a new deadline. Over TCP the
// packets go in writevs of up to writePart bytes, each counted off c.writing as it goes, so
// that what counts as unsent is what the socket has not taken; elsewhere (TLS, WebSocket) they
// are joined first, so that each write is not a TLS record or a WebSocket frame of its own.
// After Close the deadline Close set stays.
func (c *flowConn) writeAll(out net.Buffers) error {
	if c.raw == nil && len(out) > 1 {
		joined := make([]byte, 0, size(out))
		for _, b := range out {
			joined = append(joined, b...)
		}
		out = net.Buffers{joined}
	}
	c.listSince.Store(int64(time.Since(epoch)))
	defer c.listSince.Store(0)
	defer c.writeSince.Store(0)
	for len(out) > 0 {
		c.mu.Lock()
		if !c.closed && c.flow.timeout > 0 {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(c.flow.timeout))
		}
		c.mu.Unlock()
		part := out[:parts(out, writePart)]
		k := len(part)
		c.writeSince.Store(int64(time.Since(epoch)))
		n, err := part.WriteTo(c.Conn) // takes what it wrote off part, and nils it in out
		out = out[k-len(part):]
		c.mu.Lock()
		c.writing -= int(n)
		c.mu.Unlock()
		var netErr net.Error
		timeout := err != nil && errors.As(err, &netErr) && netErr.Timeout()
		switch {
		case err == nil:
		case timeout && n > 0:
			// slow but moving: a new deadline for the rest (on TCP and WebSocket; a tls.Conn
			// stays broken after a timeout, so its next write ends the client)
		case timeout && !c.isClosed():
			return ErrSlowConsumer
		default:
			return err
		}
	}
	return nil
}

// writePart is the most one writev of the writer takes: what the socket has taken is counted
// off the client's unsent bytes after each, so that a client that reads keeps getting its QoS 0
// messages while the writer is still busy with a long list (1 MiB written in one call counted
// whole until its last byte went, and every QoS 0 message meanwhile was dropped).
const writePart = 128 << 10

// parts is how many of out's first buffers make up at least limit bytes (all if fewer; at least one).
func parts(out net.Buffers, limit int) int {
	n := 0
	for i, b := range out {
		if n += len(b); n >= limit {
			return i + 1
		}
	}
	return len(out)
}

// size is the bytes of out.
func size(out net.Buffers) int {
	n := 0
	for _, b := range out {
		n += len(b)
	}
	return n
}

func (c *flowConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// fail ends the connection with err: mochi's reader sees it on its next Read. Called with mu
// held, so the socket is closed without a goodbye that could wait (see closeSocket).
func (c *flowConn) fail(err error) {
	c.err = err
	c.pending, c.unsent, c.spare, c.ownTail = nil, 0, nil, false
	c.closeSocket(true)
}

// closeSocket closes the socket once. now skips TLS's close_notify, which waits up to 5 s for a
// socket the client does not read: while mu is held, every writer to this client would wait too.
func (c *flowConn) closeSocket(now bool) {
	c.closeOnce.Do(func() {
		if t, ok := c.Conn.(*tls.Conn); ok && now {
			_ = t.NetConn().Close()
		} else {
			_ = c.Conn.Close()
		}
		close(c.socketClosed)
	})
}

// waitClosed waits until the socket is closed, at most limit.
func (c *flowConn) waitClosed(limit time.Duration) {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-c.socketClosed:
	case <-t.C:
	}
}

// Read returns ErrSlowConsumer once the connection was ended for it, so the disconnect line says so.
// mochi reads through a small buffer (IdleReadBuffer), so a 4 KiB packet costs several socket reads. While data
// flows (the last read filled mochi's buffer), Read takes what the socket holds into a 64 KiB
// buffer without waiting, and serves from it; the buffer goes back to a pool once empty, so a
// connection waiting for its next packet holds none.
func (c *flowConn) Read(p []byte) (int, error) {
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		if len(c.ahead) == 0 {
			readAheadPool.Put(c.aheadBuf)
			c.aheadBuf, c.ahead = nil, nil
		}
		c.drained.Store(false)
		return n, nil
	}
	if c.sizes.malformed != "" { // what came before the malformed packet is read
		return 0, c.refuseMalformed()
	}
	if c.flowing && c.raw != nil {
		buf := readAheadPool.Get().(*[readAhead]byte)
		if n, err := c.tryRead(buf[:]); n > 0 {
			if n = c.watch(buf[:n]); n == 0 {
				readAheadPool.Put(buf)
				return 0, c.refuseMalformed()
			}
			c.aheadBuf, c.ahead = buf, buf[:n]
			return c.Read(p)
		} else if err != nil {
			readAheadPool.Put(buf)
			return 0, c.readErr(err)
		}
		readAheadPool.Put(buf) // nothing there now: wait below, in mochi's buffer
	}
	n, err := c.Conn.Read(p)
	c.flowing = n == len(p)
	if keep := c.watch(p[:n]); keep < n { // the rest is never mochi's: the next Read ends the connection
		if keep == 0 {
			return 0, c.refuseMalformed()
		}
		n, err = keep, nil
	}
	c.drained.Store(!c.flowing)
	if err != nil {
		err = c.readErr(err)
	}
	return n, err
}

// readErr names why reading failed when the connection was ended here.
func (c *flowConn) readErr(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(c.err, ErrSlowConsumer):
		return ErrSlowConsumer
	case c.closed:
		return net.ErrClosed // not the deadline Close set to wake this reader
	}
	return err
}

// readAhead is the size of the buffer Read fills while data flows; IdleReadBuffer is mochi's
// own, which each connection holds all the time.
const (
	readAhead      = 64 << 10
	IdleReadBuffer = 512
)

var readAheadPool = sync.Pool{New: func() any { return new([readAhead]byte) }}

// closeFlush is how long what waits may still take to go out after mochi closes a connection
// (a refusing CONNACK, a DISCONNECT with a reason).
const closeFlush = 2 * time.Second

// Close ends reading at once; what waits is written for up to closeFlush, then the socket closes.
func (c *flowConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if !c.running || c.err != nil {
		c.mu.Unlock()
		c.closeSocket(false) // outside mu: TLS's goodbye may wait, writers need not
		return nil
	}
	defer c.mu.Unlock()
	_ = c.Conn.SetReadDeadline(time.Unix(1, 0)) // wake mochi's reader now
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
	return nil
}

// SetDeadline is mochi's keep-alive deadline: it applies to reading only; writes have theirs.
func (c *flowConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// SetWriteDeadline is ignored: the writer sets its own (see writeAll).
func (c *flowConn) SetWriteDeadline(time.Time) error { return nil }
