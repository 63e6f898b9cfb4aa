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
}

// currentStats is /stats as of now.
func (b *Broker) currentStats() stats {
	return stats{Info: currentInfo(b.server), SubscriptionsRefused: b.subs.Refused(),
		LoginsFailed: b.access.LoginsFailed(), LoginsRefused: b.access.LoginsRefused(),
		AcceptErrors: b.acceptErrors(), LivePagesRefused: b.page.Refused(),
		TopicAliasRefused: b.aliases.Refused()}
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
