package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// DataFile is the name of the store inside the -data directory.
const DataFile = "mqttserver.db"

// addStorage keeps what MQTT promises to keep across a restart (retained messages, sessions of
// clean-session=false clients, their subscriptions and their queued and in-flight QoS 1 and 2
// messages) in a bbolt file in dir.
//
// Why bbolt: every change is its own transaction, written copy-on-write and fsynced before the
// hook returns, so a SIGKILL or a power cut loses nothing the broker has acknowledged, and the
// file needs no recovery step. Badger and Pebble (mochi's other embedded stores) buffer writes
// by default and need value-log garbage collection or compaction; durability per message costs
// one fsync, which docs/server.md measures.
func addStorage(server *mqtt.Server, dir string) (*boltStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, DataFile)
	store := &boltStore{Hook: new(bolt.Hook)}
	err := server.AddHook(store, &bolt.Options{
		Path: path,
		// bbolt locks the file; a second broker on the same directory fails fast instead of waiting.
		Options: &bbolt.Options{Timeout: time.Second},
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("data file %s is in use by another mqttserver", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	return store, nil
}

// boltStore is mochi's bolt hook with two repairs.
//
// The hook saves in-flight messages without their packet id (the badger and pebble hooks keep
// it); restored with id 0, they make the resend on reconnect fail ("protocol violation:
// missing packet id") and the session is lost. The id is also the end of the storage key, so
// it is taken from there.
//
// The hook also stores the $SYS counters every second and, on a new data directory, logs an
// error because none are stored yet. It is cheaper to leave them out and count after loading
// (see recount).
type boltStore struct {
	*bolt.Hook
}

// OnQosPublish skips the PUBACK that mochi keeps in flight for the instant between receiving a
// QoS 1 PUBLISH and acknowledging it: storing and deleting it cost two fsyncs per message and
// buy nothing, since a publisher that saw no PUBACK sends the message again. Everything else
// (messages to subscribers, QoS 2 state) is stored.
func (h *boltStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type == packets.Puback {
		return
	}
	h.Hook.OnQosPublish(cl, pk, sent, resends)
}

func (h *boltStore) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == packets.Puback {
		return
	}
	h.Hook.OnQosComplete(cl, pk)
}

func (h *boltStore) Provides(b byte) bool {
	return b != mqtt.StoredSysInfo && b != mqtt.OnSysInfoTick && h.Hook.Provides(b)
}

func (h *boltStore) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := h.Hook.StoredInflightMessages()
	for i, m := range msgs {
		if m.PacketID != 0 {
			continue
		}
		if n := strings.LastIndexByte(m.ID, ':'); n >= 0 {
			if id, err := strconv.ParseUint(m.ID[n+1:], 10, 16); err == nil {
				msgs[i].PacketID = uint16(id)
			}
		}
	}
	return msgs, err
}

// recount sets the $SYS gauges that describe what was loaded from the store, and returns them.
func recount(server *mqtt.Server) (sessions, subs, inflight, retained int) {
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
