// Package store keeps what MQTT promises to keep across a restart (-data): retained messages,
// persistent sessions, their subscriptions and their queued and in-flight QoS 1 and 2 messages,
// in a bbolt file written ahead of every acknowledgement (store.go), and refuses a damaged file
// with one clear line (datafile.go). It is a mochi hook; it uses the mochi mends' inline
// publisher and knows nothing of the event log's formats, access control or limits.
package store

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"mqttdemo/mqttserver/mochifix"
)

// DataFile is the name of the store inside the -data directory.
const DataFile = "mqttserver.db"

// The log lines of a failing disk (noteCommit).
const (
	MsgNotSaved   = "data store: changes not saved, retrying every 0.2 s; acknowledgements held back"
	MsgSavedAgain = "data store: changes saved again; what was held back is sent"
)

// BucketName is the bbolt bucket, and the keys below are those of mochi's bolt hook, so a data file
// written by it (or by an earlier mqttserver) still loads.
const BucketName = "mochi"

var bucket = []byte(BucketName)

func clientKey(id string) string { return storage.ClientKey + "_" + id }
func subscriptionKey(id, filter string) string {
	return storage.SubscriptionKey + "_" + id + ":" + filter
}
func inflightKey(id string, packetID uint16) string {
	return fmt.Sprintf("%s_%s:%d", storage.InflightKey, id, packetID)
}
func retainedKey(topic string) string { return storage.RetainedKey + "_" + topic }

// Add keeps what MQTT promises to keep across a restart (retained messages, sessions of
// clean-session=false clients, their subscriptions and their queued and in-flight QoS 1 and 2
// messages) in a bbolt file in dir.
//
// Why bbolt: a transaction is written copy-on-write and fsynced before it returns, so a SIGKILL
// or a power cut loses nothing committed, and the file needs no recovery step. Badger and
// Pebble (mochi's other embedded stores) buffer writes by default and need value-log garbage
// collection or compaction.
//
// A damaged file stops the start (datafile.go), unless setAside: then it is moved aside.
func Add(server *mqtt.Server, dir string, setAside bool, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s := &Store{server: server, log: log, path: filepath.Join(dir, DataFile)}
	db, err := openChecked(s.path)
	var damaged *damagedError
	if errors.As(err, &damaged) && setAside {
		db, err = s.moveAside(damaged)
	}
	if err != nil {
		return nil, err
	}
	s.db = db
	if err := server.AddHook(s, nil); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// store is the -data hook. mochi's own bolt hook writes each change in its own transaction,
// whenever mochi calls it, and mochi calls it too late for a crash: it acknowledges a PUBLISH
// before it queues the copies for the subscribers, and sends PUBREL and PUBCOMP before it
// records them. A SIGKILL in between lost acknowledged messages or delivered QoS 2 messages
// twice. This store makes three promises instead:
//
//   - Write ahead: no PUBLISH at QoS 1 or 2, acknowledgement, CONNACK or SUBACK leaves the
//     broker before every change made so far is committed (OnPacketEncode waits for it).
//   - Deliver, then acknowledge: a QoS 1 or 2 PUBLISH is handed to the subscribers (and so
//     stored) from OnPublish, before mochi writes the PUBACK or PUBREC (see OnPublish).
//   - All or nothing: the PUBREC state of an incoming QoS 2 message and its copies for the
//     subscribers are committed in one transaction, so a resent PUBLISH is either delivered
//     (nothing was kept) or recognised as a duplicate (all was). They are gathered in a group
//     while mochi delivers the message, and appended together; the copies carry the group's
//     tag (see OnPublish), and a copy's write waits for its group (50 ms at most; then the
//     group sends it when it closes).
//
// Changes are committed by one goroutine, as many as have accumulated in one transaction
// (group commit): one fsync serves every client waiting at that moment. Nothing holds a lock
// the committer needs while mochi may block (a slow subscriber blocks its publishers in mochi),
// so one stuck client does not hold back the others' acknowledgements. A failed commit is
// retried, and what waits for it is not sent meanwhile.
//
// Sessions that end at disconnect (clean session, or MQTT 5 session expiry 0) are not stored:
// after a crash they would have to be discarded, and mochi brought back their subscriptions.
type Store struct {
	mqtt.HookBase
	server *mqtt.Server
	log    *slog.Logger
	path   string
	db     *bbolt.DB

	mu       sync.Mutex
	next     *batch // collecting changes
	writing  *batch // being committed, or nil
	appended int64  // sequence number of the last change appended (under mu)
	closed   bool
	stored   map[string]bool // client ids with a stored session (under mu)
	unsaved  error           // changes Stop could not commit (under mu)
	// unsent: the copies (QoS 1 and 2 PUBLISH) not sent to a connected client because the commit
	// before them failed; sent once a commit succeeds (under mu).
	unsent  map[*mqtt.Client][]packets.Packet
	failing failures // see failures

	committed atomic.Int64 // sequence number of the last change committed
	lastSync  atomic.Int64 // unix seconds of the last commit that succeeded, for /stats
	kick      chan struct{}
	done      chan struct{}

	// instantAcks: the instant PUBACK mochi keeps in flight for an incoming QoS 1 message; storing
	// and deleting it would cost a commit and buy nothing (a publisher that saw no PUBACK sends
	// again). *mqtt.Client → packet id.
	instantAcks sync.Map
	// completed: deletes this store made ahead of mochi (completedKey); mochi's own is then skipped.
	completed sync.Map
	// groups: the open QoS 2 groups, by the address of their tag (see OnPublish).
	groups sync.Map // *packets.Subscription → *group
	// publishers: an inline client with the id of each publishing client, through which its
	// messages are delivered ahead of the acknowledgement. *mqtt.Client → *mqtt.Client.
	publishers sync.Map
	// IDs pairs the packet ids clients choose with the broker's (set before the broker starts). A
	// stored QoS 2 exchange of a client keeps the client's id in its record and the broker's in its
	// key, so that the pair comes back with the session.
	IDs *mochifix.PacketIDs
}

type change struct {
	key    string
	value  []byte // nil deletes
	client string // with value and key nil: delete everything of this client
	owner  string // the client of an in-flight record
}

// completedKey is a client's packet id whose completion this store recorded ahead of mochi.
type completedKey struct {
	cl *mqtt.Client
	id uint16
}

// group gathers the changes of one incoming QoS 2 message until they are appended together.
type group struct {
	mu       sync.Mutex
	changes  []change
	closed   bool
	appended chan struct{} // closed once the changes are in a batch
	held     []heldCopy    // copies whose write gave up waiting: sent when the group closes
}

type heldCopy struct {
	cl *mqtt.Client
	pk packets.Packet
}

// groupWait is how long a copy's write waits for its group before it is left to the group to
// send: mochi may block the publisher for long on a subscriber that stopped reading, and the
// other subscribers' write loops must not wait with it.
const groupWait = 50 * time.Millisecond

// hold leaves a copy to the group to send, unless the group has closed meanwhile.
func (g *group) hold(cl *mqtt.Client, pk packets.Packet) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.held = append(g.held, heldCopy{cl, pk})
	return true
}

type batch struct {
	changes []change
	last    int64 // sequence number of the last change
	done    chan struct{}
	err     error // the commit's; in the next batch, that of the failed one it took over
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

func (s *Store) ID() string { return "data-store" }

// Provides is asked for every hook on every event of every packet: a switch.
func (s *Store) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnWillSent, mqtt.OnQosPublish, mqtt.OnQosComplete,
		mqtt.OnQosDropped, mqtt.OnClientExpired, mqtt.OnRetainedExpired, mqtt.OnPublish,
		mqtt.OnPacketRead, mqtt.OnPacketEncode,
		mqtt.StoredClients, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages,
		mqtt.StoredSubscriptions, mqtt.StoredSysInfo:
		return true
	}
	return false
}

// Init drops what a crash left of sessions that should have ended.
func (s *Store) Init(any) error {
	s.stored = map[string]bool{}
	s.unsent = map[*mqtt.Client][]packets.Packet{}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return s.dropEndedSessions(b)
	})
	if err != nil { // Add closes the file
		return fmt.Errorf("prepare data file %s: %w", s.path, err)
	}
	s.lastSync.Store(time.Now().Unix())
	s.next = newBatch()
	s.kick = make(chan struct{}, 1)
	s.done = make(chan struct{})
	go s.commitLoop()
	return nil
}

// dropEndedSessions deletes the clients whose session ends at disconnect (stored by an older
// version, or left by a crash), and the subscriptions and messages of clients not stored.
func (s *Store) dropEndedSessions(b *bbolt.Bucket) error {
	var drop [][]byte
	c := b.Cursor()
	prefix := []byte(storage.ClientKey + "_")
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var cl storage.Client
		if err := cl.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("client %q: %w", k, err)
		}
		if mochifix.SessionEnds(cl.ProtocolVersion, cl.Clean, cl.Properties.SessionExpiryInterval) {
			drop = append(drop, bytes.Clone(k))
			continue
		}
		s.stored[cl.ID] = true
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return deleteOwned(b, []string{storage.SubscriptionKey + "_", storage.InflightKey + "_"},
		func(owner string) bool { return !s.stored[owner] })
}

// deleteOwned deletes the subscriptions and messages under prefixes whose client drop accepts
// ("" when the record names none).
func deleteOwned(b *bbolt.Bucket, prefixes []string, drop func(owner string) bool) error {
	var keys [][]byte
	c := b.Cursor()
	for _, p := range prefixes {
		prefix := []byte(p)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if owner, _ := ownerOf(v); drop(owner) {
				keys = append(keys, bytes.Clone(k))
			}
		}
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ownerOf returns the client of a stored subscription or message.
func ownerOf(v []byte) (string, bool) {
	var owner struct {
		Client string `json:"client"`
	}
	if err := json.Unmarshal(v, &owner); err != nil {
		return "", false
	}
	return owner.Client, owner.Client != ""
}

// Stop commits what is left and closes the file.
func (s *Store) Stop() error {
	s.mu.Lock()
	if s.closed || s.db == nil {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.kick)
	<-s.done
	return s.db.Close()
}

// put and del append a change; the commit loop writes it. A change made for a message of an
// open group goes into the group (tag is the message's Filters, see OnPublish).
func (s *Store) put(key string, v encoding.BinaryMarshaler) { s.putFor(nil, key, v) }

func (s *Store) putFor(tag packets.Subscriptions, key string, v encoding.BinaryMarshaler) {
	data, err := v.MarshalBinary()
	if err != nil {
		s.log.Error("data store: cannot encode", "key", key, "error", err)
		return
	}
	c := change{key: key, value: data}
	if m, ok := v.(*storage.Message); ok && m.T == storage.InflightKey {
		c.owner = m.Client
	}
	if g := s.groupOf(tag); g != nil {
		g.mu.Lock()
		if !g.closed {
			g.changes = append(g.changes, c)
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
	}
	s.append(c)
}

// groupOf returns the open group a message's tag names, or nil.
func (s *Store) groupOf(tag packets.Subscriptions) *group {
	if len(tag) != 1 {
		return nil
	}
	if v, ok := s.groups.Load(&tag[0]); ok {
		return v.(*group)
	}
	return nil
}

func (s *Store) del(key string) { s.append(change{key: key}) }

func (s *Store) append(c change) { s.appendAll([]change{c}, false) }

// appendAll adds changes to the next batch, all in the same one. A group's in-flight records
// for a client whose session is no longer stored are left out (forgotten while the group was open).
func (s *Store) appendAll(cs []change, group bool) {
	cs = slices.DeleteFunc(cs, func(c change) bool {
		// bbolt refuses the whole transaction for one such key, and it would be retried for ever.
		if len(c.key) > bbolt.MaxKeySize {
			s.log.Error("data store: not saved, the topic or client id is too long for a key",
				"key_prefix", c.key[:64], "bytes", len(c.key), "max", bbolt.MaxKeySize)
			return true
		}
		return false
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if group {
		cs = slices.DeleteFunc(cs, func(c change) bool { return c.owner != "" && !s.stored[c.owner] })
	}
	if s.closed || len(cs) == 0 {
		return
	}
	s.appended += int64(len(cs))
	s.next.changes = append(s.next.changes, cs...)
	s.next.last = s.appended
	select { // under mu: Stop closes kick
	case s.kick <- struct{}{}:
	default:
	}
}

// commitLoop commits the collected changes, one transaction per round, until Stop.
func (s *Store) commitLoop() {
	defer close(s.done)
	for range s.kick {
		ok := s.commitRound()
		s.noteCommit(ok)
		if !ok {
			time.Sleep(commitRetry) // a full or failing disk: do not spin
			s.mu.Lock()
			if !s.closed {
				select {
				case s.kick <- struct{}{}:
				default:
				}
			}
			s.mu.Unlock()
		}
	}
	if !s.commitRound() {
		s.mu.Lock()
		s.unsaved = fmt.Errorf("data store: %d changes not saved at stop (%w); no acknowledgement was sent for them",
			len(s.next.changes), s.next.err)
		s.mu.Unlock()
	}
}

// noteCommit logs a failing disk: the first failed commit, then one line every failLogEvery
// while commits fail (not one every 0.2 s), and the first commit that succeeds after them.
// Called by the commit loop only.
func (s *Store) noteCommit(ok bool) {
	f, now := &s.failing, time.Now()
	switch {
	case ok && f.count > 0:
		s.log.Warn(MsgSavedAgain, "failed_commits", f.count, "after", now.Sub(f.since).Round(time.Millisecond).String())
		f.since, f.logged, f.count = time.Time{}, time.Time{}, 0
		s.sendUnsent()
	case ok:
	case f.count == 0 || now.Sub(f.logged) >= failLogEvery:
		if f.count == 0 {
			f.since = now
		}
		f.count++
		f.logged = now
		s.mu.Lock()
		changes, err := len(s.next.changes), s.next.err
		s.mu.Unlock()
		s.log.Error(MsgNotSaved, "changes", changes, "failed_commits", f.count, "since", f.since.Format(time.TimeOnly), "error", err)
	default:
		f.count++
	}
}

// failLogEvery is how often a failing disk is logged again.
const failLogEvery = 10 * time.Second

// failures is what the commit loop knows of the commits failing now.
type failures struct {
	now           bool // the last commit failed (under mu; the rest is the commit loop's only)
	since, logged time.Time
	count         int
}

// Unsaved tells, after Stop, whether changes could not be saved: the broker then exits non-zero.
func (s *Store) Unsaved() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsaved
}

// commitRetry is the pause before a failed commit is tried again.
const commitRetry = 200 * time.Millisecond

// commitRound commits the next batch, and reports whether it could. A failed batch goes back
// in front of the next one: its waiters are told (and spoil their packets), later ones wait.
func (s *Store) commitRound() bool {
	s.mu.Lock()
	b := s.next
	s.next = newBatch()
	s.writing = b
	s.mu.Unlock()

	if len(b.changes) > 0 {
		b.err = s.db.Update(func(tx *bbolt.Tx) error { return apply(tx.Bucket(bucket), b.changes) })
	}
	s.mu.Lock()
	s.failing.now = b.err != nil
	if b.err != nil { // logged by noteCommit
		s.next.changes = compact(append(b.changes, s.next.changes...))
		s.next.last = max(s.next.last, b.last)
		s.next.err = b.err
	} else if len(b.changes) > 0 {
		s.committed.Store(b.last)
		s.lastSync.Store(time.Now().Unix())
	}
	s.writing = nil
	s.mu.Unlock()
	close(b.done)
	return b.err == nil
}

// compact keeps, of changes not yet saved, the last of each key and the last deletion of each
// client: applied in order they leave the file as all of them would (whatever touches a key
// last decides it, and both are kept in place). While commits fail, a retained topic set again
// and again would otherwise keep every version in memory.
func compact(cs []change) []change {
	lastKey, lastClient := make(map[string]int, len(cs)), map[string]int{}
	for i, c := range cs {
		if c.key != "" {
			lastKey[c.key] = i
		} else {
			lastClient[c.client] = i
		}
	}
	out := make([]change, 0, len(lastKey)+len(lastClient))
	for i, c := range cs {
		if c.key != "" && lastKey[c.key] == i || c.key == "" && lastClient[c.client] == i {
			out = append(out, c)
		}
	}
	return out
}

func apply(b *bbolt.Bucket, changes []change) error {
	for _, c := range changes {
		var err error
		switch {
		case c.value != nil:
			err = b.Put([]byte(c.key), c.value)
		case c.key != "":
			err = b.Delete([]byte(c.key))
		default:
			err = deleteClient(b, c.client)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteClient deletes a client's session, subscriptions and messages.
func deleteClient(b *bbolt.Bucket, id string) error {
	if err := b.Delete([]byte(clientKey(id))); err != nil {
		return err
	}
	// "a:" is also the start of client "a:b"'s keys: the owner decides.
	return deleteOwned(b, []string{subscriptionKey(id, ""), storage.InflightKey + "_" + id + ":"},
		func(owner string) bool { return owner == id })
}

// LastSync is the time of the last commit to the data file that succeeded, in unix seconds.
func (s *Store) LastSync() int64 { return s.lastSync.Load() }

// FileSize is the data file's size in bytes, or 0 if it cannot be read.
func (s *Store) FileSize() int64 {
	info, err := os.Stat(s.path)
	if err != nil {
		return 0
	}
	return info.Size()
}

// Sync waits until every change appended so far is committed, and reports whether it was.
func (s *Store) Sync() bool {
	s.mu.Lock()
	target := s.appended
	if s.committed.Load() >= target {
		s.mu.Unlock()
		return true
	}
	b := s.next
	if s.writing != nil && target <= s.writing.last {
		b = s.writing
	}
	s.mu.Unlock()
	<-b.done
	return b.err == nil
}

// OnPacketEncode holds back every packet that tells a client something was stored until it is.
// If the commit failed, the packet is spoilt so that mochi does not send it: the client sends
// its message again, or the message stays in flight. A session that is not stored waits only
// for what it gives others (a PUBACK or PUBREC, and a PUBLISH queued to it, whose publisher's
// acknowledgement waits too).
func (s *Store) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos == 0 {
			return pk
		}
	case packets.Puback, packets.Pubrec: // also from a passing session: the copies it gave were stored
	case packets.Connack, packets.Pubrel, packets.Pubcomp, packets.Suback, packets.Unsuback:
		if !mochifix.KeepsSession(cl) {
			return pk // a session that is not stored: nothing of its own to wait for (a full disk shuts it out no more)
		}
	default:
		return pk
	}
	if g := s.groupOf(pk.Filters); g != nil { // a copy of a QoS 2 message still being handed out
		wait := time.NewTimer(groupWait)
		select {
		case <-g.appended:
		case <-wait.C:
			if g.hold(cl, pk) {
				pk.FixedHeader.Type = packets.Reserved // not now; it stays in flight
				return pk
			}
		}
		wait.Stop()
	}
	for !s.Sync() {
		s.mu.Lock()
		failing := s.failing.now
		if failing && pk.FixedHeader.Type == packets.Publish && !cl.Closed() {
			s.unsent[cl] = append(s.unsent[cl], pk) // under mu with failing: sendUnsent finds it
		}
		s.mu.Unlock()
		if failing {
			pk.FixedHeader.Type = packets.Reserved // mochi cannot encode it and returns an error
			return pk
		}
		// A commit after the failed one succeeded already, with the failed one's changes.
	}
	return pk
}

// sendUnsent sends, once commits succeed again, the copies held back while they failed: mochi
// keeps them in flight but sends them again only at the client's next connection, and a clean
// session has none. Not from the commit loop, which never waits for a client. A copy published
// after the recovery may overtake them.
func (s *Store) sendUnsent() {
	s.mu.Lock()
	unsent := s.unsent
	s.unsent = map[*mqtt.Client][]packets.Packet{}
	s.mu.Unlock()
	if len(unsent) == 0 {
		return
	}
	go func() {
		for cl, pks := range unsent {
			for _, pk := range pks {
				// Still in flight under its id, and not another message that took the id since.
				if held, ok := cl.State.Inflight.Get(pk.PacketID); ok && held.Created == pk.Created && !cl.Closed() {
					_ = cl.WritePacket(pk) // a failed write leaves it in flight: resent at the next connection
				}
			}
		}
	}()
}

// OnPublish delivers an incoming QoS 1 or 2 message to its subscribers before mochi
// acknowledges it, and marks it handled so that mochi does not deliver it again. The delivery
// goes through an inline copy of the publisher (same client id, so MQTT 5 No Local still
// works), which mochi lets straight through to the subscribers.
//
// At QoS 2 from a lasting session, the PUBREC state and the subscribers' copies form a group.
// The message gets a tag for the time of the delivery: a one-element Filters slice, which
// mochi copies by reference into every copy it makes (Packet.Copy) and ignores for a PUBLISH,
// so the store recognises the copies (OnQosPublish) and their writes (OnPacketEncode).
func (s *Store) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || pk.FixedHeader.Qos == 0 {
		return pk, nil
	}
	pub := s.publisherFor(cl)
	var g *group
	if pk.FixedHeader.Qos == 2 && mochifix.KeepsSession(cl) {
		key := inflightKey(cl.ID, pk.PacketID)
		state, err := (&storage.Message{ID: key, T: storage.InflightKey, Client: cl.ID, PacketID: s.clientID(cl, pk.PacketID),
			FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, Created: time.Now().Unix()}).MarshalBinary()
		if err != nil {
			return pk, nil // mochi handles it as without -data's ordering
		}
		g = &group{appended: make(chan struct{}), changes: []change{{key: key, value: state}}}
		pk.Filters = packets.Subscriptions{{}}
		s.groups.Store(&pk.Filters[0], g)
	}
	err := s.server.InjectPacket(pub, pk)
	if g != nil {
		g.mu.Lock()
		s.appendAll(g.changes, true) // before the group leaves the map: a write that misses it finds its changes appended
		g.closed = true
		g.mu.Unlock()
		s.groups.Delete(&pk.Filters[0])
		close(g.appended)
		pk.Filters = nil
		for _, h := range g.held {
			_ = h.cl.WritePacket(h.pk) // a failed write leaves it in flight: resent at the next connection
		}
	}
	if err != nil { // mochi goes on and delivers it after the ack, as it would without this hook
		s.log.Error("data store: could not deliver before acknowledging", "client", cl.ID, "error", err)
		return pk, nil
	}
	// InjectPacket counted the message as received a second time.
	atomic.AddInt64(&s.server.Info.PacketsReceived, -1)
	atomic.AddInt64(&s.server.Info.MessagesReceived, -1)
	pk.Ignore = true // delivered, retained and logged through the inline publisher
	return pk, nil
}

func (s *Store) publisherFor(cl *mqtt.Client) *mqtt.Client {
	if v, ok := s.publishers.Load(cl); ok {
		return v.(*mqtt.Client)
	}
	pub := mochifix.InlinePublisher(s.server, cl)
	s.publishers.Store(cl, pub)
	return pub
}

// OnPacketRead records, before mochi answers it, the state a client's PUBREC or PUBREL moves a
// QoS 2 message to: mochi sends the PUBREL or PUBCOMP without storing the change, so after a
// crash it sent the message again, and a subscriber that had completed it took it twice.
func (s *Store) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	t := pk.FixedHeader.Type
	if (t != packets.Pubrec && t != packets.Pubrel) || !mochifix.KeepsSession(cl) ||
		pk.ReasonCode >= packets.ErrUnspecifiedError.Code || !pk.ReasonCodeValid() {
		return pk, nil
	}
	held, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok {
		return pk, nil
	}
	key := inflightKey(cl.ID, pk.PacketID)
	switch {
	case t == packets.Pubrec && held.FixedHeader.Type == packets.Publish: // our message, now awaiting PUBCOMP
		s.put(key, &storage.Message{ID: key, T: storage.InflightKey, Client: cl.ID, PacketID: pk.PacketID,
			FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, Created: held.Created})
	case t == packets.Pubrel && held.FixedHeader.Type == packets.Pubrec: // theirs, complete
		s.completed.Store(completedKey{cl, pk.PacketID}, struct{}{})
		s.del(key)
	}
	return pk, nil
}

func (s *Store) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { s.updateClient(cl) }

func (s *Store) OnWillSent(cl *mqtt.Client, _ packets.Packet) { s.updateClient(cl) }

func (s *Store) updateClient(cl *mqtt.Client) {
	if !mochifix.KeepsSession(cl) {
		s.mu.Lock()
		had := s.stored[cl.ID]
		delete(s.stored, cl.ID)
		s.mu.Unlock()
		if had { // the client came back with a clean session
			s.append(change{client: cl.ID})
		}
		return
	}
	s.mu.Lock()
	had := s.stored[cl.ID]
	s.stored[cl.ID] = true
	s.mu.Unlock()
	if !had {
		// A lasting session that took over one that was not stored (an MQTT 5 session with
		// expiry 0 becoming lasting): what it inherited is stored now, or mochi's resends,
		// which the store skips, would be all there is of it.
		s.storeSession(cl)
	}
	props := cl.Properties.Props.Copy(false)
	s.put(clientKey(cl.ID), &storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod:      props.AuthenticationMethod,
			AuthenticationData:        props.AuthenticationData,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	})
}

// storeSession stores a client's subscriptions and the messages in flight to it.
func (s *Store) storeSession(cl *mqtt.Client) {
	for _, sub := range cl.State.Subscriptions.GetAll() {
		key := subscriptionKey(cl.ID, sub.Filter)
		s.put(key, &storage.Subscription{
			ID: key, T: storage.SubscriptionKey, Client: cl.ID, Qos: sub.Qos, Filter: sub.Filter,
			Identifier: sub.Identifier, NoLocal: sub.NoLocal, RetainHandling: sub.RetainHandling,
			RetainAsPublished: sub.RetainAsPublished,
		})
	}
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if t := pk.FixedHeader.Type; t == packets.Publish || t == packets.Pubrel || t == packets.Pubrec {
			s.StoreInflight(cl, pk, pk.Created)
		}
	}
}

func (s *Store) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	s.mu.Lock()
	delete(s.unsent, cl) // mochi sends them again at the next connection, if the session lasts
	s.mu.Unlock()
	s.instantAcks.Delete(cl)
	s.publishers.Delete(cl)
	s.completed.Range(func(k, _ any) bool {
		if k.(completedKey).cl == cl {
			s.completed.Delete(k)
		}
		return true
	})
	if expire && !cl.IsTakenOver() { // as mochi decides; the new connection owns the session
		s.forget(cl.ID)
	}
}

func (s *Store) OnClientExpired(cl *mqtt.Client) { s.forget(cl.ID) }

// forget deletes a stored session with everything in it.
func (s *Store) forget(id string) {
	s.mu.Lock()
	had := s.stored[id]
	delete(s.stored, id)
	s.mu.Unlock()
	if had {
		s.append(change{client: id})
	}
}

func (s *Store) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !mochifix.KeepsSession(cl) {
		return
	}
	for i, f := range pk.Filters {
		if codes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		key := subscriptionKey(cl.ID, f.Filter)
		s.put(key, &storage.Subscription{
			ID: key, T: storage.SubscriptionKey, Client: cl.ID, Qos: codes[i], Filter: f.Filter,
			Identifier: f.Identifier, NoLocal: f.NoLocal, RetainHandling: f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		})
	}
}

func (s *Store) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !mochifix.KeepsSession(cl) {
		return
	}
	for _, f := range pk.Filters {
		s.del(subscriptionKey(cl.ID, f.Filter))
	}
}

func (s *Store) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	key := retainedKey(pk.TopicName)
	if r == -1 {
		s.del(key)
		return
	}
	m := message(cl.ID, pk)
	m.ID, m.T = key, storage.RetainedKey
	// Not in the message's group: a later retained message on the topic, stored while the
	// group is open, must not be overwritten by it. Setting it again after a resend is harmless.
	s.put(key, m)
}

func (s *Store) OnRetainedExpired(topic string) { s.del(retainedKey(topic)) }

// OnQosPublish stores a message in flight to a client. The states of QoS 2 exchanges are
// stored by OnPublish and OnPacketRead, and mochi's resends (DUP) were stored when first
// queued: storing them again would cost a commit per message before a resumed session's
// client is read.
func (s *Store) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	switch {
	case !mochifix.KeepsSession(cl) || cl.IsTakenOver():
		// A session taken over lives on in the new connection, under the same keys: what is
		// queued to the old one is copied, or handed over by the mochi mends (StoreInflight).
	case pk.FixedHeader.Type == packets.Puback:
		s.instantAcks.Store(cl, pk.PacketID)
	case pk.FixedHeader.Type == packets.Publish && !pk.FixedHeader.Dup:
		s.StoreInflight(cl, pk, sent)
	}
}

// StoreInflight stores a message queued to cl (also for the mochi mends, whose messages are
// marked DUP).
func (s *Store) StoreInflight(cl *mqtt.Client, pk packets.Packet, sent int64) {
	if !mochifix.KeepsSession(cl) || cl.IsTakenOver() {
		return
	}
	key := inflightKey(cl.ID, pk.PacketID)
	m := message(cl.ID, pk)
	m.ID, m.T, m.Sent, m.PacketID = key, storage.InflightKey, sent, pk.PacketID
	if pk.FixedHeader.Type == packets.Pubrec {
		m.PacketID = s.clientID(cl, pk.PacketID)
	}
	s.putFor(pk.Filters, key, m)
}

// clientID is the packet id the client chose for its exchange kept under id.
func (s *Store) clientID(cl *mqtt.Client, id uint16) uint16 {
	if s.IDs == nil {
		return id
	}
	return s.IDs.ClientID(cl.ID, id)
}

// OnQosComplete deletes a completed message. A PUBACK completes two things: the incoming
// PUBACK not stored (mochi completes it right after, on the same goroutine) and a QoS 1
// message the broker sent to the client, which is stored.
func (s *Store) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if !mochifix.KeepsSession(cl) {
		return
	}
	if pk.FixedHeader.Type == packets.Puback {
		if id, ok := s.instantAcks.LoadAndDelete(cl); ok && id.(uint16) == pk.PacketID {
			return
		}
	}
	if _, ok := s.completed.LoadAndDelete(completedKey{cl, pk.PacketID}); ok {
		return
	}
	s.del(inflightKey(cl.ID, pk.PacketID))
}

// OnQosDropped deletes a message that left a client's in-flight store undelivered. mochi also
// clears the old connection when a session is taken over; its messages live on in the new one
// under the same keys, so they are kept.
func (s *Store) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if !mochifix.KeepsSession(cl) || cl.IsTakenOver() {
		return
	}
	s.del(inflightKey(cl.ID, pk.PacketID))
}

func message(client string, pk packets.Packet) *storage.Message {
	props := pk.Properties.Copy(false)
	return &storage.Message{
		Client:      client,
		Origin:      pk.Origin,
		FixedHeader: pk.FixedHeader,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		Created:     pk.Created,
		Properties: storage.MessageProperties{
			PayloadFormat:          props.PayloadFormat,
			PayloadFormatFlag:      props.PayloadFormatFlag,
			MessageExpiryInterval:  props.MessageExpiryInterval,
			ContentType:            props.ContentType,
			ResponseTopic:          props.ResponseTopic,
			CorrelationData:        props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier,
			TopicAlias:             props.TopicAlias,
			User:                   props.User,
		},
	}
}

func (s *Store) StoredClients() ([]storage.Client, error) {
	return load[storage.Client](s, storage.ClientKey)
}

func (s *Store) StoredSubscriptions() ([]storage.Subscription, error) {
	return load[storage.Subscription](s, storage.SubscriptionKey)
}

func (s *Store) StoredRetainedMessages() ([]storage.Message, error) {
	return load[storage.Message](s, storage.RetainedKey)
}

// StoredInflightMessages gives each message the broker's packet id, the end of its key (mochi's
// bolt hook did not store it in the record, an older data file). A client's QoS 2 exchange
// holds the client's id in its record: the pair goes back to IDs.
func (s *Store) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := load[storage.Message](s, storage.InflightKey)
	for i, m := range msgs {
		n := strings.LastIndexByte(m.ID, ':')
		if n < 0 {
			continue
		}
		var id uint16
		if _, err := fmt.Sscan(m.ID[n+1:], &id); err != nil {
			continue
		}
		if m.FixedHeader.Type == packets.Pubrec && s.IDs != nil {
			s.IDs.Restore(m.Client, cmp.Or(m.PacketID, id), id)
		}
		msgs[i].PacketID = id
	}
	return msgs, err
}

// StoredSysInfo is not a store of $SYS counters: mochi calls it last when it loads the data
// file, after the retained and queued messages and before the listeners serve, which makes it
// the moment to give those messages back their MQTT 5 expiry (restoreExpiry). It returns the
// gauges of what was loaded, which mochi sets.
func (s *Store) StoredSysInfo() (storage.SystemInfo, error) {
	restoreExpiry(s.server)
	Recount(s.server)
	return storage.SystemInfo{Info: *s.server.Info.Clone()}, nil
}

// restoreExpiry sets the expiry of the loaded messages whose publisher gave one. The record
// keeps the publisher's Message Expiry Interval and when the broker received the message, but
// mochi's storage.Message has no expiry time and ToPacket leaves it 0 (and the protocol version
// mochi checks): such a message never expired, and was forwarded with its full interval.
func restoreExpiry(server *mqtt.Server) {
	restore := func(pk packets.Packet) (packets.Packet, bool) {
		mei := int64(pk.Properties.MessageExpiryInterval)
		if pk.FixedHeader.Type != packets.Publish || mei == 0 || pk.Expiry != 0 {
			return pk, false
		}
		pk.Expiry = pk.Created + mei
		pk.ProtocolVersion = 5 // only MQTT 5 has message expiry; mochi expires only those
		return pk, true
	}
	for _, pk := range server.Topics.Retained.GetAll() {
		if pk, ok := restore(pk); ok {
			server.Topics.Retained.Add(pk.TopicName, pk)
		}
	}
	for _, cl := range server.Clients.GetAll() {
		for _, pk := range cl.State.Inflight.GetAll(false) {
			if pk, ok := restore(pk); ok {
				cl.State.Inflight.Set(pk)
			}
		}
	}
}

// load reads every record of one kind (those of sessions dropped at Init are gone already).
func load[T any, P interface {
	*T
	encoding.BinaryUnmarshaler
}](s *Store, kind string) ([]T, error) {
	var out []T
	prefix := []byte(kind + "_")
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var rec T
			if err := P(&rec).UnmarshalBinary(v); err != nil {
				return fmt.Errorf("read %s: %w", k, err)
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// Recount sets the $SYS gauges that describe what was loaded from the store, and returns them.
func Recount(server *mqtt.Server) (sessions, subs, inflight, retained int) {
	for _, cl := range server.Clients.GetAll() {
		sessions++
		inflight += cl.State.Inflight.Len()
		subs += cl.State.Subscriptions.Len()
	}
	all := server.Topics.Retained.Len()
	atomic.StoreInt64(&server.Info.Inflight, int64(inflight))
	atomic.StoreInt64(&server.Info.Subscriptions, int64(subs))
	atomic.StoreInt64(&server.Info.Retained, int64(all))
	for topic := range server.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, "$") { // mochi retains its own $SYS topics in memory
			retained++
		}
	}
	return sessions, subs, inflight, retained
}

// Keys lists the data file's keys (bbolt keeps them sorted) once everything appended so far is
// committed.
func (s *Store) Keys() ([]string, error) {
	s.Sync()
	var keys []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	return keys, err
}
