package broker

import (
	"runtime"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/system"
)

// stats is /stats: mochi's $SYS counters and the refusals of the broker's own limits, each
// counted since the start.
type stats struct {
	*system.Info
	// filters refused past -max-subscriptions or -max-filter-length
	SubscriptionsRefused int64 `json:"subscriptions_refused"`
	// with -auth: logins whose password check failed; logins refused unchecked (the login
	// throttle, -max-failed-logins)
	LoginsFailed  int64 `json:"logins_failed"`
	LoginsRefused int64 `json:"logins_refused"`
	// accept errors waited out by the listeners (too many open files, …: accept.go)
	AcceptErrors int64 `json:"accept_errors"`
	// live page streams refused: past 4 per user or address, or 16 in all
	LivePagesRefused int64 `json:"live_pages_refused"`
	// MQTT 5 connections ended past -max-topic-alias-bytes
	TopicAliasRefused int64 `json:"topic_alias_refused"`
	// PUBLISH packets and their bytes by QoS (index 0, 1, 2), read from clients and written
	// to them (limits.Traffic)
	ReceivedByQoS qosTraffic `json:"received_by_qos"`
	SentByQoS     qosTraffic `json:"sent_by_qos"`
	// messages dropped, by reason (drops); connections refused, by the CONNACK's reason
	DroppedByReason    drops        `json:"dropped_by_reason"`
	ConnectionsRefused refusals     `json:"connections_refused"`
	DeliveryLatency    latencyStats `json:"delivery_latency"`
	// with -data: the data file's size and the time of its last commit (unix seconds)
	DataFileBytes int64 `json:"data_file_bytes,omitempty"`
	DataLastSync  int64 `json:"data_last_sync,omitempty"`
}

// drops are the messages dropped by reason, since the start. Each is counted in
// messages_dropped as well, except ACL: mochi does not count a PUBLISH the rules refuse as
// dropped. The field names are the reason label's values on /metrics.
type drops struct {
	SlowConsumer   int64 `json:"slow_consumer"`    // QoS 0 to a client that fell behind (-max-queued-bytes)
	WriteQueueFull int64 `json:"write_queue_full"` // a client's write queue full (-max-pending-writes)
	QueueMessages  int64 `json:"queue_messages"`   // a session holding -max-queued-messages, or out of packet ids
	QueueBytes     int64 `json:"queue_bytes"`      // an offline session holding -max-queued-bytes
	MemoryBudget   int64 `json:"memory_budget"`    // all offline sessions holding -max-queued-total
	RetainedFull   int64 `json:"retained_full"`    // not retained past -max-retained(-bytes); still delivered
	Expired        int64 `json:"expired"`          // older than -max-message-expiry
	TooLarge       int64 `json:"too_large"`        // larger than the client's Maximum Packet Size
	ACL            int64 `json:"acl"`              // a PUBLISH the -auth rules refused
}

// currentStats is /stats as of now.
func (b *Broker) currentStats() stats {
	s := stats{Info: currentInfo(b.server), SubscriptionsRefused: b.subs.Refused(),
		LoginsFailed: b.access.LoginsFailed(), LoginsRefused: b.access.LoginsRefused(),
		AcceptErrors: b.acceptErrors(), LivePagesRefused: b.page.Refused(),
		ReceivedByQoS: toQoSTraffic(b.traffic.Received()), SentByQoS: toQoSTraffic(b.traffic.Sent()),
		ConnectionsRefused: refusalsOf(b.traffic), DeliveryLatency: latencyOf(b.traffic),
		TopicAliasRefused: b.aliases.Refused()}
	queueBytes, memoryBudget := b.queues.Lost()
	s.DroppedByReason = drops{SlowConsumer: b.flow.DroppedQoS0(), WriteQueueFull: b.traffic.WriteQueueFull(),
		QueueMessages: s.InflightDropped, QueueBytes: queueBytes, MemoryBudget: memoryBudget,
		RetainedFull: b.retained.Lost(), Expired: b.expiry.Lost(), TooLarge: b.fixes.TooLarge(),
		ACL: b.access.PublishesDenied()}
	if b.data != nil {
		s.DataFileBytes, s.DataLastSync = b.data.FileSize(), b.data.LastSync()
	}
	return s
}

// currentInfo is the broker's $SYS counters as of now, for /stats. mochi brings the gauges it
// derives (clients total and disconnected, time, uptime, memory, goroutines) up to date only
// when it publishes $SYS, once a second: read in between, /stats showed a persistent client
// that had come and gone as no client at all, and an uptime of 0. They are derived here as
// mochi does, into the copy. clients_total counts connected clients and the sessions kept for
// offline ones, as Mosquitto's: a clean-session client that left is not counted.
func currentInfo(server *mqtt.Server) *system.Info {
	info := server.Info.Clone()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	info.MemoryAlloc = int64(m.HeapInuse)
	info.Threads = int64(runtime.NumGoroutine())
	info.Time = time.Now().Unix()
	info.Uptime = info.Time - info.Started
	info.ClientsTotal = int64(server.Clients.Len())
	// A connection taking over a session is counted as connected beside the old one for a moment.
	info.ClientsDisconnected = max(0, info.ClientsTotal-info.ClientsConnected)
	return info
}
