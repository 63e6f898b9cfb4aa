package broker

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statMetric is one /stats counter as a Prometheus metric.
type statMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(stats) float64
}

func statCounter(name, help string, value func(stats) float64) statMetric {
	return statMetric{prometheus.NewDesc("mqttserver_"+name, help, nil, nil), prometheus.CounterValue, value}
}

func statGauge(name, help string, value func(stats) float64) statMetric {
	return statMetric{prometheus.NewDesc("mqttserver_"+name, help, nil, nil), prometheus.GaugeValue, value}
}

// statMetrics are /stats' fields on /metrics. None has a label whose values a client chooses
// (client id, topic, user): one client could make series without end; the labels of
// labelledMetrics take their values from closed sets. memory_alloc and threads are
// left to the Go collector (go_memstats_heap_inuse_bytes, go_goroutines), time and uptime to
// the process collector (process_start_time_seconds).
var statMetrics = []statMetric{
	statGauge("clients_connected", "Clients connected now.",
		func(s stats) float64 { return float64(s.ClientsConnected) }),
	statGauge("clients_connected_max", "The most clients connected at once since the start.",
		func(s stats) float64 { return float64(s.ClientsMaximum) }),
	statGauge("sessions", "Sessions held: the connected clients and the sessions kept for offline ones.",
		func(s stats) float64 { return float64(s.ClientsTotal) }),
	statGauge("sessions_offline", "Sessions kept for clients that are not connected.",
		func(s stats) float64 { return float64(s.ClientsDisconnected) }),
	statGauge("subscriptions", "Topic filters subscribed, of all sessions.",
		func(s stats) float64 { return float64(s.Subscriptions) }),
	statGauge("retained_messages", "Retained messages kept, mochi's own $SYS topics among them.",
		func(s stats) float64 { return float64(s.Retained) }),
	statGauge("inflight_messages", "QoS 1 and 2 messages not yet acknowledged: in flight to connected clients and queued for offline sessions.",
		func(s stats) float64 { return float64(s.Inflight) }),
	statCounter("messages_received_total", "PUBLISH packets received from clients.",
		func(s stats) float64 { return float64(s.MessagesReceived) }),
	statCounter("messages_sent_total", "PUBLISH packets sent to clients.",
		func(s stats) float64 { return float64(s.MessagesSent) }),
	statCounter("messages_dropped_total", "Messages dropped, all reasons together: a slow consumer, a full queue or the queues' budget "+
		"(-max-queued-*), a full retained store, -max-message-expiry, a message too large for its subscriber.",
		func(s stats) float64 { return float64(s.MessagesDropped) }),
	statCounter("inflight_dropped_total", "Of the messages dropped, those refused because a session held -max-queued-messages "+
		"or had no packet id free (added to messages_dropped within a second).",
		func(s stats) float64 { return float64(s.InflightDropped) }),
	statCounter("received_bytes_total", "Bytes received from clients.",
		func(s stats) float64 { return float64(s.BytesReceived) }),
	statCounter("sent_bytes_total", "Bytes sent to clients.",
		func(s stats) float64 { return float64(s.BytesSent) }),
	statCounter("packets_received_total", "MQTT packets received from clients.",
		func(s stats) float64 { return float64(s.PacketsReceived) }),
	statCounter("packets_sent_total", "MQTT packets sent to clients.",
		func(s stats) float64 { return float64(s.PacketsSent) }),
	statCounter("subscriptions_refused_total", "Topic filters refused past -max-subscriptions or -max-filter-length.",
		func(s stats) float64 { return float64(s.SubscriptionsRefused) }),
	statCounter("logins_failed_total", "Logins whose password check failed (-auth).",
		func(s stats) float64 { return float64(s.LoginsFailed) }),
	statCounter("logins_refused_total", "Logins refused unchecked by the login throttle (-max-failed-logins).",
		func(s stats) float64 { return float64(s.LoginsRefused) }),
	statCounter("accept_errors_total", "Accept errors the listeners waited out (too many open files, ...).",
		func(s stats) float64 { return float64(s.AcceptErrors) }),
	statCounter("live_pages_refused_total", "Live page streams refused: past 4 per user or address, or 16 in all.",
		func(s stats) float64 { return float64(s.LivePagesRefused) }),
	statCounter("topic_alias_refused_total", "MQTT 5 connections ended with DISCONNECT 0x97: their topic aliases held more than -max-topic-alias-bytes.",
		func(s stats) float64 { return float64(s.TopicAliasRefused) }),
}

// labelledMetric is a /stats group of counters as one metric with a label.
type labelledMetric struct {
	desc   *prometheus.Desc
	values func(stats) []labelled
}

type labelled struct {
	label string
	value int64
}

func labelledCounter(name, help, label string, values func(stats) []labelled) labelledMetric {
	return labelledMetric{prometheus.NewDesc("mqttserver_"+name, help, []string{label}, nil), values}
}

// byQoS labels the counts of each QoS with "0", "1" and "2".
func byQoS(counts [3]int64) []labelled {
	return []labelled{{"0", counts[0]}, {"1", counts[1]}, {"2", counts[2]}}
}

var labelledMetrics = []labelledMetric{
	labelledCounter("publish_received_total", "PUBLISH packets received from clients, by QoS.", "qos",
		func(s stats) []labelled { return byQoS(s.ReceivedByQoS.Messages) }),
	labelledCounter("publish_received_bytes_total", "Bytes of the PUBLISH packets received from clients, by QoS.", "qos",
		func(s stats) []labelled { return byQoS(s.ReceivedByQoS.Bytes) }),
	labelledCounter("publish_sent_total", "PUBLISH packets written to clients, by QoS.", "qos",
		func(s stats) []labelled { return byQoS(s.SentByQoS.Messages) }),
	labelledCounter("publish_sent_bytes_total", "Bytes of the PUBLISH packets written to clients, by QoS.", "qos",
		func(s stats) []labelled { return byQoS(s.SentByQoS.Bytes) }),
	labelledCounter("drops_total", "Messages dropped, by reason since the start of the process: slow_consumer, write_queue_full "+
		"(-max-pending-writes), queue_messages (-max-queued-messages), queue_bytes (-max-queued-bytes), memory_budget "+
		"(-max-queued-total), retained_full (not retained), expired (-max-message-expiry), too_large, acl (a PUBLISH the rules "+
		"refused, the one reason not in messages_dropped_total).", "reason",
		func(s stats) []labelled {
			d := s.DroppedByReason
			return []labelled{{"slow_consumer", d.SlowConsumer}, {"write_queue_full", d.WriteQueueFull},
				{"queue_messages", d.QueueMessages}, {"queue_bytes", d.QueueBytes}, {"memory_budget", d.MemoryBudget},
				{"retained_full", d.RetainedFull}, {"expired", d.Expired}, {"too_large", d.TooLarge}, {"acl", d.ACL}}
		}),
	labelledCounter("connections_refused_total", "Connections refused with a CONNACK, by its reason code: bad_credentials, "+
		"not_authorised, throttled, client_id_invalid, server_busy (also -max-clients, -max-sessions), protocol_error, other. "+
		"MQTT 3.1.1 has fewer codes: bad credentials count as not_authorised, throttled as server_busy.", "reason",
		func(s stats) []labelled {
			out := make([]labelled, 0, len(refusalReasons))
			for _, r := range refusalReasons {
				out = append(out, labelled{r, s.ConnectionsRefused[r]})
			}
			return out
		}),
}

const latencyHelp = "Time from a PUBLISH read from a client to its write to a subscriber's socket; 1 message in 64 " +
	"received is timed, at each of its deliveries (retained messages sent on subscribing are not)."

var (
	deliveryLatency = prometheus.NewDesc("mqttserver_delivery_latency_seconds", latencyHelp, nil, nil)
	dataFileSize    = prometheus.NewDesc("mqttserver_data_file_size_bytes", "Size of the -data file.", nil, nil)
	dataLastSync    = prometheus.NewDesc("mqttserver_data_last_sync_timestamp_seconds",
		"When the last commit to the -data file succeeded, in unix seconds.", nil, nil)
)

const listenerUpHelp = "1 while the listener accepts connections, 0 while it waits out accept errors (as /healthz)."

var listenerUp = prometheus.NewDesc("mqttserver_listener_up", listenerUpHelp, []string{"listener"}, nil)

// statsCollector reads /stats' snapshot and the listeners' state when Prometheus scrapes, and
// only then: it adds nothing to the work done for a message.
type statsCollector struct {
	stats     func() stats
	listeners []string                 // the listener names, for mqttserver_listener_up
	data      bool                     // -data: the data file's metrics
	problems  func() map[string]string // the listeners not accepting now
}

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range statMetrics {
		ch <- m.desc
	}
	for _, m := range labelledMetrics {
		ch <- m.desc
	}
	ch <- deliveryLatency
	if c.data {
		ch <- dataFileSize
		ch <- dataLastSync
	}
	ch <- listenerUp
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, m := range statMetrics {
		ch <- constMetric(m.desc, m.typ, m.value(s))
	}
	for _, m := range labelledMetrics {
		for _, v := range m.values(s) {
			ch <- constMetric(m.desc, prometheus.CounterValue, float64(v.value), v.label)
		}
	}
	ch <- latencyHistogram(s.DeliveryLatency)
	if c.data {
		ch <- constMetric(dataFileSize, prometheus.GaugeValue, float64(s.DataFileBytes))
		ch <- constMetric(dataLastSync, prometheus.GaugeValue, float64(s.DataLastSync))
	}
	failing := c.problems()
	for _, name := range c.listeners {
		up := 1.0
		if _, ok := failing[name]; ok {
			up = 0
		}
		ch <- constMetric(listenerUp, prometheus.GaugeValue, up, name)
	}
}

// constMetric is prometheus.MustNewConstMetric that reports a mistake to the scrape instead
// of panicking.
func constMetric(desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(desc, typ, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}

// latencyHistogram is /stats' delivery latency as a Prometheus histogram.
func latencyHistogram(l latencyStats) prometheus.Metric {
	buckets := make(map[float64]uint64, len(latencyBuckets))
	for i, ub := range latencyBuckets {
		if i < len(l.Buckets) {
			buckets[ub] = uint64(l.Buckets[i].Count)
		}
	}
	m, err := prometheus.NewConstHistogram(deliveryLatency, uint64(l.Count), l.SumSeconds, buckets)
	if err != nil {
		return prometheus.NewInvalidMetric(deliveryLatency, err)
	}
	return m
}

// metricsHandler serves /metrics: the broker's counters (statsCollector), the Go runtime's
// and the process'. Its own registry: a process may hold more than one broker (the tests do).
func metricsHandler(c statsCollector) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{c, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// listenerNames are the names of the bound listeners, each once.
func (b *Broker) listenerNames() []string {
	var names []string
	for _, l := range b.listening {
		if !slices.Contains(names, l.name) {
			names = append(names, l.name)
		}
	}
	return names
}
