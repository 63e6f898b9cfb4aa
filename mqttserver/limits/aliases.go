package limits

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
)

// Why this file: each topic alias an MQTT 5 client sets holds its topic, up to 65,535 bytes,
// for as long as the connection lasts. -max-topic-aliases bounds the count; with it raised
// (mochi allows 65,535) one connection could pin gigabytes. Here the bytes are bounded too.
// The broker assigns no aliases of its own (limitsHook.OnConnect): mochi would give a client
// as many as it asks for, each holding a topic it was sent.

// DefaultMaxTopicAliasBytes bounds the bytes of the topics one connection's aliases hold:
// ten aliases of 6 KiB topics, where topics of MQTT deployments are rarely over 256 bytes;
// 10,000 connections at the limit hold 640 MiB, at mochi's count of ten 64 KiB topics 6.4 GB.
const DefaultMaxTopicAliasBytes = 64 << 10

// ReasonAliasBytes is the reason logged when connections are ended past -max-topic-alias-bytes.
const ReasonAliasBytes = "topic aliases over -max-topic-alias-bytes (DISCONNECT 0x97)"

// AliasBudget counts the bytes of the topics each connection's aliases hold and refuses a
// PUBLISH that would take them past the limit: DISCONNECT 0x97 (quota exceeded, an
// administrative limit: MQTT 5 §3.14.2.1), and the connection ends.
type AliasBudget struct {
	max     int // bytes; 0 is no limit
	refused atomic.Int64
	told    atomic.Int64 // of refused, those logged
	log     *slog.Logger
	stop    chan struct{}
	done    chan struct{}

	mu   sync.Mutex
	held map[*mqtt.Client]*aliasCharges // for connections that set an alias
}

// aliasCharges are the bytes charged to one connection's aliases. An alias is charged the
// longer of the topic mochi's table holds for it and the one a PUBLISH sets: mochi sets the
// alias later (processPublish), and not at all when it refuses the PUBLISH for another reason
// (an ACL, an invalid topic), so the charge covers the table either way.
type aliasCharges struct {
	total int
	by    map[uint16]int
}

func newAliasBudget(max int, log *slog.Logger) *AliasBudget {
	return &AliasBudget{max: max, log: log, held: make(map[*mqtt.Client]*aliasCharges),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// start begins the once-a-second summary; close writes the last one and ends it. Each
// connection ended has its own disconnect line too (package eventlog), with the error.
func (b *AliasBudget) start() { go everySecond(b.stop, b.done, func(bool) { b.sumUp() }) }

func (b *AliasBudget) close() {
	close(b.stop)
	<-b.done
}

func (b *AliasBudget) sumUp() {
	n := b.refused.Load()
	if n -= b.told.Swap(n); n > 0 {
		b.log.LogAttrs(context.Background(), slog.LevelWarn, eventlog.MsgDisconnected, slog.Int64("count", n),
			slog.String("reason", ReasonAliasBytes), slog.Int("limit", b.max))
	}
}

// Refused is the number of connections ended past the limit since the start, for /stats.
func (b *AliasBudget) Refused() int64 {
	if b == nil {
		return 0
	}
	return b.refused.Load()
}

// take counts the topic pk sets for its alias, and returns a violation if the connection's
// aliases would then hold more than the limit. It runs on the client's read goroutine, before
// mochi sets the alias, which only that goroutine does.
// An alias over the maximum (aliases) is mochi's to refuse (0x94).
func (b *AliasBudget) take(cl *mqtt.Client, pk packets.Packet, aliases uint16) error {
	if b.max == 0 || pk.FixedHeader.Type != packets.Publish || cl.Properties.ProtocolVersion != 5 ||
		!pk.Properties.TopicAliasFlag || pk.Properties.TopicAlias == 0 || pk.Properties.TopicAlias > aliases || pk.TopicName == "" {
		return nil
	}
	// The topic the alias holds now: mochi's table has no lookup (see aliasKnown).
	alias := pk.Properties.TopicAlias
	old := cl.State.TopicAliases.Inbound.Set(alias, "")
	charge := max(len(old), len(pk.TopicName))
	b.mu.Lock()
	c := b.held[cl]
	if c == nil {
		c = &aliasCharges{by: make(map[uint16]int)}
		b.held[cl] = c
	}
	held := c.total - c.by[alias] + charge
	if held <= b.max {
		c.total, c.by[alias] = held, charge
	}
	b.mu.Unlock()
	if held <= b.max {
		return nil
	}
	b.refused.Add(1)
	return violation{packets.ErrQuotaExceeded, fmt.Sprintf("topic aliases would hold %d bytes, over -max-topic-alias-bytes %d", held, b.max)}
}

// forget drops what a connection's aliases held: its table ends with it.
func (b *AliasBudget) forget(cl *mqtt.Client) {
	b.mu.Lock()
	delete(b.held, cl)
	b.mu.Unlock()
}
