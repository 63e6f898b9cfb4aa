// Package livepage is the broker's live page (GET / on -http-listen): clients, subscriptions,
// topics with their message rate, retained messages and the event log, pushed to the browser
// with Server-Sent Events. It is a mochi hook that counts what the page shows, and the page's
// HTTP handlers; the assembly hands it the event lines (LineRing) and, with -auth, the login
// check. It knows nothing of access control, storage or limits.
package livepage

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
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

	"mqttdemo/mqttserver/health"
)

// What the page streams (GET /events) is bounded whatever the message rate:
// one snapshot a second with at most liveRows rows per table, and the event lines of the
// console, which are already capped (eventlog.LinesPerSecond).
const (
	liveTopics   = 1000             // topics counted one by one; messages to more are counted together
	liveIdle     = 10 * time.Minute // a topic without messages this long is forgotten
	liveRows     = 100              // rows of each table sent to the page
	liveLines    = 300              // event lines kept for the page
	PayloadShown = 80               // bytes of a payload shown
	RateWindow   = 60               // seconds of message rate kept per topic
	liveViewers  = 16               // pages open at once
	liveEach     = 4                // pages open at once per user (-auth) or address (without)
	liveLinesGap = 250 * time.Millisecond
	liveWriteTTL = 10 * time.Second // a page that stops reading is dropped after this
)

//go:embed index.html live.css live.js
var assets embed.FS

// Page is a mochi hook that counts what the page shows, and the page's HTTP handlers.
// The hot path is OnPublished: a read-locked map lookup and a short per-topic lock, no
// allocation once a topic is known.
type Page struct {
	mqtt.HookBase
	server *mqtt.Server
	lines  *LineRing
	// CheckUser checks HTTP basic credentials against the -auth users; nil: the page is open.
	CheckUser func(remote, user, password string) bool
	// Recheck tells whether a stream's credentials still open the page, after Reloaded; nil:
	// they do.
	Recheck func(user, password string) bool
	// MayRead tells whether a viewer may read a topic, for the payloads of the packet flow; nil:
	// every viewer may (an open page, or the users of PageLogin, who may read everything).
	MayRead func(user, topic string) bool

	reloadMu sync.Mutex
	reloaded chan struct{} // closed by the next Reloaded

	mu      sync.Mutex
	clients map[*mqtt.Client]Client
	probe   health.Visits // the -healthcheck probe's visits, not shown

	topicsMu sync.RWMutex
	topics   map[string]*topicStats
	others   atomic.Int64 // messages to topics past liveTopics

	viewers  atomic.Int32
	buildMu  sync.Mutex // one snapshot built at a time
	snap     atomic.Pointer[snapshot]
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	eachMu  sync.Mutex
	each    map[string]int // open streams by whose they are (streamOwner)
	refused atomic.Int64   // streams refused, for /stats

	watchMu sync.Mutex
	watches map[string]*capture                 // the clients watched by a stream (flow.go)
	watched atomic.Pointer[map[string]*capture] // a copy for the hooks; nil: none watched
}

// topicStats counts the messages to one topic. The sampling goroutine turns count into the
// per-second rates once a second.
type topicStats struct {
	mu      sync.Mutex
	count   int64
	size    int                // bytes of the last payload
	n       int                // bytes of it kept in last
	last    [PayloadShown]byte // its start
	seen    int64              // count at the previous sample
	rates   [RateWindow]int32  // messages per second, a ring ending at pos
	pos     int
	lastMsg time.Time // when seen last changed
}

// New makes the page; lines receives the console's event lines (see teeLog).
func New(server *mqtt.Server, lines *LineRing) *Page {
	return &Page{
		server:  server,
		lines:   lines,
		clients: make(map[*mqtt.Client]Client),
		topics:  make(map[string]*topicStats),
		each:    make(map[string]int),
		watches: make(map[string]*capture),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

func (p *Page) ID() string { return "live-page" }

// Provides: mochi asks before each call, so the hooks of the packet flow are provided only while
// a page watches a client, and cost nothing otherwise.
func (p *Page) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPublished, mqtt.OnPacketRead:
		return true
	case mqtt.OnPacketSent, mqtt.OnWillSent:
		return p.watched.Load() != nil
	}
	return false
}

// Init starts the once-a-second sampling; Stop ends it and the pages' streams.
func (p *Page) Init(any) error {
	go p.loop()
	return nil
}

func (p *Page) Stop() error {
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
	})
	return nil
}

// Client is a connected client as the page shows it.
type Client struct {
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

func (p *Page) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	c := Client{ID: cl.ID, User: string(cl.Properties.Username), Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Protocol: protocolNames[cl.Properties.ProtocolVersion], Clean: pk.Connect.Clean, Since: time.Now()}
	show := func() {
		p.mu.Lock()
		p.clients[cl] = c
		p.mu.Unlock()
	}
	// The probe's visits every few seconds are not shown; a client that only looks like it is,
	// as soon as it does anything else.
	if !p.probe.Arrive(cl, pk, show) {
		show()
	}
}

// OnPacketRead tells the probe's visits from other clients, and captures the packets of a
// watched client (flow.go).
func (p *Page) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	p.probe.Sent(cl, pk)
	if c := p.captureFor(cl, &pk); c != nil {
		c.add(describe(&pk, "in"))
	}
	return pk, nil
}

func (p *Page) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	p.noteClosed(cl, err)
	p.probe.Leave(cl, true) // gone either way: nothing to show
	p.mu.Lock()
	delete(p.clients, cl)
	p.mu.Unlock()
}

// OnPublished runs on the publisher's goroutine for every message: keep it short.
func (p *Page) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	if pk.Ignore { // counted when -data delivered it ahead of the ack (package store)
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

func (p *Page) addTopic(topic string) *topicStats {
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
func (p *Page) loop() {
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

func (p *Page) sample(now time.Time) {
	var idle []string
	p.topicsMu.RLock()
	for name, t := range p.topics {
		t.mu.Lock()
		t.pos = (t.pos + 1) % RateWindow
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

// Snapshot is what the page shows, sent once a second as JSON. Each list is cut to
// liveRows; the totals say how many there are.
type Snapshot struct {
	Time               time.Time  `json:"time"`
	Open               bool       `json:"open"` // no -auth: anyone who reaches the page sees it all
	Clients            []Client   `json:"clients"`
	ClientsTotal       int        `json:"clientsTotal"`
	Subscriptions      []Filter   `json:"subscriptions"`
	SubscriptionsTotal int        `json:"subscriptionsTotal"`
	Topics             []Topic    `json:"topics"`
	TopicsTotal        int        `json:"topicsTotal"`
	OtherMessages      int64      `json:"otherMessages"` // to topics past liveTopics
	Retained           []Retained `json:"retained"`
	RetainedTotal      int        `json:"retainedTotal"`
	Received           int64      `json:"received"` // messages, as in /stats
	Sent               int64      `json:"sent"`
}

// Filter is a subscription filter and who subscribed with it.
type Filter struct {
	Filter      string       `json:"filter"`
	Subscribers []Subscriber `json:"subscribers"`
}

// Subscriber is one session subscribed with a filter.
type Subscriber struct {
	Client    string `json:"client"`
	QoS       byte   `json:"qos"`
	Connected bool   `json:"connected"` // false: a kept session, its messages are queued
}

// Topic is the messages to one topic: counts, the rate per second and the last payload.
type Topic struct {
	Topic      string  `json:"topic"`
	Count      int64   `json:"count"`
	LastMinute int64   `json:"lastMinute"`
	Rates      []int32 `json:"rates"` // messages in each of the last RateWindow seconds, oldest first
	Payload    string  `json:"payload"`
	Bytes      int     `json:"bytes"`
}

// Retained is a retained message.
type Retained struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	Bytes   int    `json:"bytes"`
	QoS     byte   `json:"qos"`
}

// snapshot is a Snapshot as sent, and when it was made.
type snapshot struct {
	json []byte
	at   time.Time
}

// recent returns a snapshot at most a second old, so that pages opened in a loop cost no more
// than one a second.
func (p *Page) recent() *snapshot {
	if s := p.snap.Load(); s != nil && time.Since(s.at) < time.Second {
		return s
	}
	return p.build()
}

// build makes the current snapshot and keeps it for the streams.
func (p *Page) build() *snapshot {
	p.buildMu.Lock()
	defer p.buildMu.Unlock()
	s := Snapshot{Time: time.Now(), Open: p.CheckUser == nil}

	p.mu.Lock()
	for _, c := range p.clients {
		s.Clients = append(s.Clients, c)
	}
	p.mu.Unlock()
	slices.SortFunc(s.Clients, func(a, b Client) int { return strings.Compare(a.ID, b.ID) })
	s.ClientsTotal = len(s.Clients)
	s.Clients = s.Clients[:min(len(s.Clients), liveRows)]

	filters := map[string][]Subscriber{}
	for _, cl := range p.server.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		for f, sub := range cl.State.Subscriptions.GetAll() {
			filters[f] = append(filters[f], Subscriber{Client: cl.ID, QoS: sub.Qos, Connected: !cl.Closed()})
		}
	}
	for f, subs := range filters {
		slices.SortFunc(subs, func(a, b Subscriber) int { return strings.Compare(a.Client, b.Client) })
		s.Subscriptions = append(s.Subscriptions, Filter{Filter: f, Subscribers: subs[:min(len(subs), liveRows)]})
	}
	slices.SortFunc(s.Subscriptions, func(a, b Filter) int { return strings.Compare(a.Filter, b.Filter) })
	s.SubscriptionsTotal = len(s.Subscriptions)
	s.Subscriptions = s.Subscriptions[:min(len(s.Subscriptions), liveRows)]

	p.topicsMu.RLock()
	for name, t := range p.topics {
		t.mu.Lock()
		lt := Topic{Topic: name, Count: t.count, Rates: make([]int32, RateWindow),
			Payload: shorten(t.last[:t.n], t.size), Bytes: t.size}
		for i := range RateWindow {
			r := t.rates[(t.pos+1+i)%RateWindow]
			lt.Rates[i] = r
			lt.LastMinute += int64(r)
		}
		t.mu.Unlock()
		s.Topics = append(s.Topics, lt)
	}
	p.topicsMu.RUnlock()
	slices.SortFunc(s.Topics, func(a, b Topic) int {
		return cmp.Or(cmp.Compare(b.LastMinute, a.LastMinute), strings.Compare(a.Topic, b.Topic))
	})
	s.TopicsTotal = len(s.Topics)
	s.Topics = s.Topics[:min(len(s.Topics), liveRows)]
	s.OtherMessages = p.others.Load()

	for topic, pk := range p.server.Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, "$SYS/") { // mochi's counters: /stats has them
			continue
		}
		s.Retained = append(s.Retained, Retained{Topic: topic, Payload: shorten(pk.Payload, len(pk.Payload)),
			Bytes: len(pk.Payload), QoS: pk.FixedHeader.Qos})
	}
	slices.SortFunc(s.Retained, func(a, b Retained) int { return strings.Compare(a.Topic, b.Topic) })
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

// shorten returns the first PayloadShown bytes of a payload of size bytes as text: invalid
// UTF-8 becomes U+FFFD (one for a run of bad bytes), and "…" marks a cut. The page shows it as text, never as HTML.
func shorten(b []byte, size int) string {
	b = b[:min(len(b), PayloadShown)]
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

// Announce logs the page's address for a reader to open; a listener on every interface is
// reached from this machine as localhost.
func (p *Page) Announce(log *slog.Logger, addr net.Addr) {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	access := "open" // anyone who reaches it sees every topic and payload
	if p.CheckUser != nil {
		access = "users of the auth file"
	}
	log.Info("live page", "url", "http://"+net.JoinHostPort(host, port)+"/", "access", access)
}

// Register serves the page and its stream on mux.
func (p *Page) Register(mux *http.ServeMux) {
	files := http.FileServerFS(assets)
	mux.Handle("GET /{$}", p.guard(files))
	mux.Handle("GET /live.js", p.guard(files))
	mux.Handle("GET /live.css", p.guard(files))
	mux.Handle("GET /events", p.guard(http.HandlerFunc(p.events)))
}

// guard asks for a user of the -auth file (HTTP basic auth) when there is one, and sets the
// headers that keep the page's data to the page: no scripts or styles from elsewhere.
func (p *Page) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if p.CheckUser != nil {
			v, ok := p.authorized(r)
			if !ok {
				h.Set("WWW-Authenticate", `Basic realm="mqttserver", charset="UTF-8"`)
				http.Error(w, "a user of the -auth file is needed", http.StatusUnauthorized)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), viewerKey{}, v))
		}
		next.ServeHTTP(w, r)
	})
}

// viewer is the user a request was let in for, kept by a stream to check again after a reload.
type viewer struct {
	user, password string
	reloaded       <-chan struct{} // closed by the first reload after the check
}

type viewerKey struct{}

func (p *Page) authorized(r *http.Request) (*viewer, bool) {
	user, password, ok := r.BasicAuth()
	if !ok {
		return nil, false
	}
	v := &viewer{user: user, password: password, reloaded: p.nextReload()} // before the check
	// The login throttle bounds the bcrypt checks: one address's run one at a time.
	return v, p.CheckUser(r.RemoteAddr, user, password)
}

// Reloaded tells the open streams that the auth file was reloaded: each checks its viewer again
// (Recheck) before it sends anything more, and ends if the viewer may no longer see the page.
func (p *Page) Reloaded() {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if p.reloaded != nil {
		close(p.reloaded)
		p.reloaded = nil
	}
}

// nextReload is closed by the next Reloaded.
func (p *Page) nextReload() <-chan struct{} {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if p.reloaded == nil {
		p.reloaded = make(chan struct{})
	}
	return p.reloaded
}

// stillAllowed tells whether v may still see the page: asked again once a reload happened since
// the last check. A nil viewer is an open page.
func (p *Page) stillAllowed(v *viewer) bool {
	if v == nil {
		return true
	}
	select {
	case <-v.reloaded:
		v.reloaded = p.nextReload() // before the check: a reload during it is seen next time
		return p.Recheck == nil || p.Recheck(v.user, v.password)
	default:
		return true
	}
}

// errRevoked ends the stream of a viewer a reload no longer allows.
var errRevoked = errors.New("viewer no longer allowed")

// events streams Server-Sent Events: "snapshot" (Snapshot) once a second, "lines" (the
// new event lines, a JSON array) at most every liveLinesGap, and with ?watch=ID "packets"
// (Flow: the packets of client ID since the last one) at most every liveLinesGap. One stream
// watches at most one client, so a viewer watches at most liveEach and all at most liveViewers.
func (p *Page) events(w http.ResponseWriter, r *http.Request) {
	watch := r.URL.Query().Get("watch")
	if len(watch) > maxClientID {
		http.Error(w, "watch: not a client id (longer than MQTT allows)", http.StatusBadRequest)
		return
	}
	owner := p.streamOwner(r)
	if !p.openStream(owner) {
		p.refused.Add(1)
		http.Error(w, fmt.Sprintf("too many live pages open for %s: at most %d at once; close one and reload", owner, liveEach),
			http.StatusTooManyRequests)
		return
	}
	defer p.closeStream(owner)
	if p.viewers.Add(1) > liveViewers {
		p.viewers.Add(-1)
		p.refused.Add(1)
		http.Error(w, "too many live pages open", http.StatusServiceUnavailable)
		return
	}
	defer p.viewers.Add(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold the stream back
	rc := http.NewResponseController(w)
	v, _ := r.Context().Value(viewerKey{}).(*viewer)
	var reloaded <-chan struct{} // nil, never ready, for an open page
	send := func(event string, data []byte) error {
		if !p.stillAllowed(v) { // checked before each event: none is sent after the reload
			return errRevoked
		}
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteTTL))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		return rc.Flush()
	}
	var flow *capture
	var flowNext uint64
	if watch != "" {
		flow = p.watch(watch)
		defer p.unwatch(watch)
	}
	snap := p.recent() // one at once; then the loop's
	if err := send("snapshot", snap.json); err != nil {
		return
	}
	lines, next := p.lines.since(0)
	tick := time.NewTicker(liveLinesGap)
	defer tick.Stop()
	for first := true; ; first = false {
		if len(lines) > 0 {
			data, _ := json.Marshal(lines)
			if err := send("lines", data); err != nil {
				return
			}
		}
		if flow != nil {
			if f := p.flowFor(v, watch, flow, &flowNext, first); f != nil {
				data, _ := json.Marshal(f)
				if err := send("packets", data); err != nil {
					return
				}
			}
		}
		if cur := p.snap.Load(); cur != snap {
			snap = cur
			if err := send("snapshot", snap.json); err != nil {
				return
			}
		}
		if v != nil {
			reloaded = v.reloaded
		}
		select {
		case <-r.Context().Done():
			return
		case <-p.stop:
			return
		case <-reloaded:
			if !p.stillAllowed(v) {
				return
			}
		case <-tick.C:
		}
		lines, next = p.lines.since(next)
	}
}

// Refused counts the streams refused since the start (nil: no page, none).
func (p *Page) Refused() int64 {
	if p == nil {
		return 0
	}
	return p.refused.Load()
}

// streamOwner is whose a stream is, for liveEach: the user with -auth, else the address (a proxy
// in front makes every viewer one address).
func (p *Page) streamOwner(r *http.Request) string {
	if v, _ := r.Context().Value(viewerKey{}).(*viewer); v != nil {
		return "user " + v.user
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "address " + host
}

// openStream counts a stream of owner, unless owner has liveEach open already.
func (p *Page) openStream(owner string) bool {
	p.eachMu.Lock()
	defer p.eachMu.Unlock()
	if p.each[owner] >= liveEach {
		return false
	}
	p.each[owner]++
	return true
}

func (p *Page) closeStream(owner string) {
	p.eachMu.Lock()
	defer p.eachMu.Unlock()
	if p.each[owner]--; p.each[owner] <= 0 {
		delete(p.each, owner)
	}
}

// LineRing keeps the last liveLines event lines, as the console writes them, for the page.
type LineRing struct {
	mu    sync.Mutex
	lines [liveLines]string
	total uint64 // lines written so far; the next line's number
}

// Write takes one line (the console writes a line at a time).
func (r *LineRing) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	r.mu.Lock()
	r.lines[r.total%liveLines] = line
	r.total++
	r.mu.Unlock()
	return len(p), nil
}

// since returns the lines from number n on (the older ones are gone: a note says how many),
// and the number of the next line.
func (r *LineRing) since(n uint64) ([]string, uint64) {
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
