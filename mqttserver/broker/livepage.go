package broker

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/shared/console"
)

// The live page (GET / on -http-listen) shows the broker as it runs: clients, subscriptions,
// topics with their message rate, retained messages and the event log, pushed to the browser
// with Server-Sent Events (GET /events). What it streams is bounded whatever the message rate:
// one snapshot a second with at most liveRows rows per table, and the event lines of the
// console, which are already capped (LinesPerSecond).
const (
	liveTopics   = 1000             // topics counted one by one; messages to more are counted together
	liveIdle     = 10 * time.Minute // a topic without messages this long is forgotten
	liveRows     = 100              // rows of each table sent to the page
	liveLines    = 300              // event lines kept for the page
	livePayload  = 80               // bytes of a payload shown
	liveWindow   = 60               // seconds of message rate kept per topic
	liveViewers  = 16               // pages open at once
	liveLinesGap = 250 * time.Millisecond
	liveWriteTTL = 10 * time.Second // a page that stops reading is dropped after this
)

//go:embed livepage
var livePageFiles embed.FS

// livePage is a mochi hook that counts what the page shows, and the page's HTTP handlers.
// The hot path is OnPublished: a read-locked map lookup and a short per-topic lock, no
// allocation once a topic is known.
type livePage struct {
	mqtt.HookBase
	server *mqtt.Server
	lines  *lineRing
	// checkUser checks HTTP basic credentials against the -auth users; nil: the page is open.
	checkUser func(remote, user, password string) bool

	mu      sync.Mutex
	clients map[*mqtt.Client]liveClient

	topicsMu sync.RWMutex
	topics   map[string]*topicStats
	others   atomic.Int64 // messages to topics past liveTopics

	viewers  atomic.Int32
	buildMu  sync.Mutex // one snapshot built at a time
	snap     atomic.Pointer[snapshot]
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// topicStats counts the messages to one topic. The sampling goroutine turns count into the
// per-second rates once a second.
type topicStats struct {
	mu      sync.Mutex
	count   int64
	size    int               // bytes of the last payload
	n       int               // bytes of it kept in last
	last    [livePayload]byte // its start
	seen    int64             // count at the previous sample
	rates   [liveWindow]int32 // messages per second, a ring ending at pos
	pos     int
	lastMsg time.Time // when seen last changed
}

// newLivePage makes the page; lines receives the console's event lines (see teeLog).
func newLivePage(server *mqtt.Server, lines *lineRing) *livePage {
	return &livePage{
		server:  server,
		lines:   lines,
		clients: make(map[*mqtt.Client]liveClient),
		topics:  make(map[string]*topicStats),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

func (p *livePage) ID() string { return "live-page" }

func (p *livePage) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect || b == mqtt.OnPublished
}

// Init starts the once-a-second sampling; Stop ends it and the pages' streams.
func (p *livePage) Init(any) error {
	go p.loop()
	return nil
}

func (p *livePage) Stop() error {
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
	})
	return nil
}

// liveClient is a connected client as the page shows it.
type liveClient struct {
	ID       string    `json:"id"`
	User     string    `json:"user"`
	Remote   string    `json:"remote"`
	Listener string    `json:"listener"`
	Protocol string    `json:"protocol"`
	Clean    bool      `json:"clean"`
	Since    time.Time `json:"since"`
}

// protocolNames are MQTT's protocol levels.
var protocolNames = map[byte]string{3: "3.1", 4: "3.1.1", 5: "5"}

func (p *livePage) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.ID == healthCheckID || cl.Net.Inline {
		return
	}
	c := liveClient{ID: cl.ID, User: string(cl.Properties.Username), Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Protocol: protocolNames[cl.Properties.ProtocolVersion], Clean: pk.Connect.Clean, Since: time.Now()}
	p.mu.Lock()
	p.clients[cl] = c
	p.mu.Unlock()
}

func (p *livePage) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	p.mu.Lock()
	delete(p.clients, cl)
	p.mu.Unlock()
}

// OnPublished runs on the publisher's goroutine for every message: keep it short.
func (p *livePage) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	if pk.Ignore { // counted when -data delivered it ahead of the ack (storage.go)
		return
	}
	p.topicsMu.RLock()
	t := p.topics[pk.TopicName]
	p.topicsMu.RUnlock()
	if t == nil {
		if t = p.addTopic(pk.TopicName); t == nil {
			p.others.Add(1)
			return
		}
	}
	t.mu.Lock()
	t.count++
	t.size = len(pk.Payload)
	t.n = copy(t.last[:], pk.Payload)
	t.mu.Unlock()
}

func (p *livePage) addTopic(topic string) *topicStats {
	p.topicsMu.Lock()
	defer p.topicsMu.Unlock()
	if t := p.topics[topic]; t != nil {
		return t
	}
	if len(p.topics) >= liveTopics {
		return nil
	}
	t := &topicStats{lastMsg: time.Now()}
	p.topics[topic] = t
	return t
}

// loop samples the rates each second, forgets idle topics, and builds the snapshot while a
// page is open.
func (p *livePage) loop() {
	defer close(p.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-tick.C:
			p.sample(now)
			if p.viewers.Load() > 0 {
				p.build()
			}
		}
	}
}

func (p *livePage) sample(now time.Time) {
	var idle []string
	p.topicsMu.RLock()
	for name, t := range p.topics {
		t.mu.Lock()
		t.pos = (t.pos + 1) % liveWindow
		t.rates[t.pos] = int32(t.count - t.seen)
		if t.count != t.seen {
			t.seen, t.lastMsg = t.count, now
		}
		if now.Sub(t.lastMsg) > liveIdle {
			idle = append(idle, name)
		}
		t.mu.Unlock()
	}
	p.topicsMu.RUnlock()
	if len(idle) > 0 {
		p.topicsMu.Lock()
		for _, name := range idle {
			delete(p.topics, name)
		}
		p.topicsMu.Unlock()
	}
}

// liveSnapshot is what the page shows, sent once a second as JSON. Each list is cut to
// liveRows; the totals say how many there are.
type liveSnapshot struct {
	Time               time.Time      `json:"time"`
	Open               bool           `json:"open"` // no -auth: anyone who reaches the page sees it all
	Clients            []liveClient   `json:"clients"`
	ClientsTotal       int            `json:"clientsTotal"`
	Subscriptions      []liveFilter   `json:"subscriptions"`
	SubscriptionsTotal int            `json:"subscriptionsTotal"`
	Topics             []liveTopic    `json:"topics"`
	TopicsTotal        int            `json:"topicsTotal"`
	OtherMessages      int64          `json:"otherMessages"` // to topics past liveTopics
	Retained           []liveRetained `json:"retained"`
	RetainedTotal      int            `json:"retainedTotal"`
	Received           int64          `json:"received"` // messages, as in /stats
	Sent               int64          `json:"sent"`
}

type liveFilter struct {
	Filter      string    `json:"filter"`
	Subscribers []liveSub `json:"subscribers"`
}

type liveSub struct {
	Client    string `json:"client"`
	QoS       byte   `json:"qos"`
	Connected bool   `json:"connected"` // false: a kept session, its messages are queued
}

type liveTopic struct {
	Topic      string  `json:"topic"`
	Count      int64   `json:"count"`
	LastMinute int64   `json:"lastMinute"`
	Rates      []int32 `json:"rates"` // messages in each of the last liveWindow seconds, oldest first
	Payload    string  `json:"payload"`
	Bytes      int     `json:"bytes"`
}

type liveRetained struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	Bytes   int    `json:"bytes"`
	QoS     byte   `json:"qos"`
}

// snapshot is a liveSnapshot as sent, and when it was made.
type snapshot struct {
	json []byte
	at   time.Time
}

// recent returns a snapshot at most a second old, so that pages opened in a loop cost no more
// than one a second.
func (p *livePage) recent() *snapshot {
	if s := p.snap.Load(); s != nil && time.Since(s.at) < time.Second {
		return s
	}
	return p.build()
}

// build makes the current snapshot and keeps it for the streams.
func (p *livePage) build() *snapshot {
	p.buildMu.Lock()
	defer p.buildMu.Unlock()
	s := liveSnapshot{Time: time.Now(), Open: p.checkUser == nil}

	p.mu.Lock()
	for _, c := range p.clients {
		s.Clients = append(s.Clients, c)
	}
	p.mu.Unlock()
	slices.SortFunc(s.Clients, func(a, b liveClient) int { return strings.Compare(a.ID, b.ID) })
	s.ClientsTotal = len(s.Clients)
	s.Clients = s.Clients[:min(len(s.Clients), liveRows)]

	filters := map[string][]liveSub{}
	for _, cl := range p.server.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		for f, sub := range cl.State.Subscriptions.GetAll() {
			filters[f] = append(filters[f], liveSub{Client: cl.ID, QoS: sub.Qos, Connected: !cl.Closed()})
		}
	}
	for f, subs := range filters {
		slices.SortFunc(subs, func(a, b liveSub) int { return strings.Compare(a.Client, b.Client) })
		s.Subscriptions = append(s.Subscriptions, liveFilter{Filter: f, Subscribers: subs[:min(len(subs), liveRows)]})
	}
	slices.SortFunc(s.Subscriptions, func(a, b liveFilter) int { return strings.Compare(a.Filter, b.Filter) })
	s.SubscriptionsTotal = len(s.Subscriptions)
	s.Subscriptions = s.Subscriptions[:min(len(s.Subscriptions), liveRows)]

	p.topicsMu.RLock()
	for name, t := range p.topics {
		t.mu.Lock()
		lt := liveTopic{Topic: name, Count: t.count, Rates: make([]int32, liveWindow),
			Payload: shorten(t.last[:t.n], t.size), Bytes: t.size}
		for i := range liveWindow {
			r := t.rates[(t.pos+1+i)%liveWindow]
			lt.Rates[i] = r
			lt.LastMinute += int64(r)
		}
		t.mu.Unlock()
		s.Topics = append(s.Topics, lt)
	}
	p.topicsMu.RUnlock()
	slices.SortFunc(s.Topics, func(a, b liveTopic) int {
		return cmp.Or(cmp.Compare(b.LastMinute, a.LastMinute), strings.Compare(a.Topic, b.Topic))
	})
	s.TopicsTotal = len(s.Topics)
	s.Topics = s.Topics[:min(len(s.Topics), liveRows)]
	s.OtherMessages = p.others.Load()

	for topic, pk := range p.server.Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, "$SYS/") { // mochi's counters: /stats has them
			continue
		}
		s.Retained = append(s.Retained, liveRetained{Topic: topic, Payload: shorten(pk.Payload, len(pk.Payload)),
			Bytes: len(pk.Payload), QoS: pk.FixedHeader.Qos})
	}
	slices.SortFunc(s.Retained, func(a, b liveRetained) int { return strings.Compare(a.Topic, b.Topic) })
	s.RetainedTotal = len(s.Retained)
	s.Retained = s.Retained[:min(len(s.Retained), liveRows)]

	s.Received = atomic.LoadInt64(&p.server.Info.MessagesReceived)
	s.Sent = atomic.LoadInt64(&p.server.Info.MessagesSent)

	b, err := json.Marshal(s)
	if err != nil { // unreachable: the snapshot has only strings, numbers and times
		b = []byte(`{}`)
	}
	snap := &snapshot{json: b, at: s.Time}
	p.snap.Store(snap)
	return snap
}

// shorten returns the first livePayload bytes of a payload of size bytes as text: invalid
// UTF-8 becomes U+FFFD (one for a run of bad bytes), and "…" marks a cut. The page shows it as text, never as HTML.
func shorten(b []byte, size int) string {
	b = b[:min(len(b), livePayload)]
	cut := size > len(b)
	if cut { // do not leave half a character at the end
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if cut {
		s += "…"
	}
	return s
}

// announce logs the page's address for a reader to open; a listener on every interface is
// reached from this machine as localhost.
func (p *livePage) announce(log *slog.Logger, addr net.Addr) {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	access := "open" // anyone who reaches it sees every topic and payload
	if p.checkUser != nil {
		access = "users of the auth file"
	}
	log.Info("live page", "url", "http://"+net.JoinHostPort(host, port)+"/", "access", access)
}

// register serves the page and its stream on mux.
func (p *livePage) register(mux *http.ServeMux) {
	static, _ := fs.Sub(livePageFiles, "livepage") // the embedded directory is there
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", p.guard(files))
	mux.Handle("GET /live.js", p.guard(files))
	mux.Handle("GET /live.css", p.guard(files))
	mux.Handle("GET /events", p.guard(http.HandlerFunc(p.events)))
}

// guard asks for a user of the -auth file (HTTP basic auth) when there is one, and sets the
// headers that keep the page's data to the page: no scripts or styles from elsewhere.
func (p *livePage) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if p.checkUser != nil && !p.authorized(r) {
			h.Set("WWW-Authenticate", `Basic realm="mqttserver", charset="UTF-8"`)
			http.Error(w, "a user of the -auth file is needed", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (p *livePage) authorized(r *http.Request) bool {
	user, password, ok := r.BasicAuth()
	if !ok {
		return false
	}
	// The login throttle bounds the bcrypt checks: one address's run one at a time.
	return p.checkUser(r.RemoteAddr, user, password)
}

// events streams Server-Sent Events: "snapshot" (liveSnapshot) once a second, "lines" (the
// new event lines, a JSON array) at most every liveLinesGap.
func (p *livePage) events(w http.ResponseWriter, r *http.Request) {
	if p.viewers.Add(1) > liveViewers {
		p.viewers.Add(-1)
		http.Error(w, "too many live pages open", http.StatusServiceUnavailable)
		return
	}
	defer p.viewers.Add(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold the stream back
	rc := http.NewResponseController(w)
	send := func(event string, data []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteTTL))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		return rc.Flush()
	}
	snap := p.recent() // one at once; then the loop's
	if err := send("snapshot", snap.json); err != nil {
		return
	}
	lines, next := p.lines.since(0)
	tick := time.NewTicker(liveLinesGap)
	defer tick.Stop()
	for {
		if len(lines) > 0 {
			data, _ := json.Marshal(lines)
			if err := send("lines", data); err != nil {
				return
			}
		}
		if cur := p.snap.Load(); cur != snap {
			snap = cur
			if err := send("snapshot", snap.json); err != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-p.stop:
			return
		case <-tick.C:
		}
		lines, next = p.lines.since(next)
	}
}

// lineRing keeps the last liveLines event lines, as the console writes them, for the page.
type lineRing struct {
	mu    sync.Mutex
	lines [liveLines]string
	total uint64 // lines written so far; the next line's number
}

// Write takes one line (the console writes a line at a time).
func (r *lineRing) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	r.mu.Lock()
	r.lines[r.total%liveLines] = line
	r.total++
	r.mu.Unlock()
	return len(p), nil
}

// since returns the lines from number n on (the older ones are gone: a note says how many),
// and the number of the next line.
func (r *lineRing) since(n uint64) ([]string, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if first := r.total - min(r.total, liveLines); n < first {
		if n > 0 {
			out = append(out, fmt.Sprintf("… %d lines not shown", first-n))
		}
		n = first
	}
	for ; n < r.total; n++ {
		out = append(out, r.lines[n%liveLines])
	}
	return out, r.total
}

// teeLog returns log with its events also written, as the console's text lines at info and
// above, to lines.
func teeLog(log *slog.Logger, lines io.Writer) *slog.Logger {
	page := &consoleHandler{console: console.New(lines, false), level: slog.LevelInfo}
	return slog.New(teeHandler{log.Handler(), page})
}

// teeHandler hands each record to both handlers, each at its own level.
type teeHandler struct{ a, b slog.Handler }

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errA, errB error
	if t.a.Enabled(ctx, r.Level) {
		errA = t.a.Handle(ctx, r)
	}
	if t.b.Enabled(ctx, r.Level) {
		errB = t.b.Handle(ctx, r)
	}
	return errors.Join(errA, errB)
}

func (t teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return teeHandler{t.a.WithAttrs(attrs), t.b.WithAttrs(attrs)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t.a.WithGroup(name), t.b.WithGroup(name)}
}
