package broker

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttserver/rawmqtt"
)

// metricsOfStats pairs each mqttserver_ metric with its /stats field: the test that they agree
// fails when a metric is added without its pair.
var metricsOfStats = map[string]string{
	"mqttserver_clients_connected":           "clients_connected",
	"mqttserver_clients_connected_max":       "clients_maximum",
	"mqttserver_sessions":                    "clients_total",
	"mqttserver_sessions_offline":            "clients_disconnected",
	"mqttserver_subscriptions":               "subscriptions",
	"mqttserver_retained_messages":           "retained",
	"mqttserver_inflight_messages":           "inflight",
	"mqttserver_messages_received_total":     "messages_received",
	"mqttserver_messages_sent_total":         "messages_sent",
	"mqttserver_messages_dropped_total":      "messages_dropped",
	"mqttserver_inflight_dropped_total":      "inflight_dropped",
	"mqttserver_received_bytes_total":        "bytes_received",
	"mqttserver_sent_bytes_total":            "bytes_sent",
	"mqttserver_packets_received_total":      "packets_received",
	"mqttserver_packets_sent_total":          "packets_sent",
	"mqttserver_subscriptions_refused_total": "subscriptions_refused",
	"mqttserver_logins_failed_total":         "logins_failed",
	"mqttserver_logins_refused_total":        "logins_refused",
	"mqttserver_accept_errors_total":         "accept_errors",
	"mqttserver_live_pages_refused_total":    "live_pages_refused",
	"mqttserver_topic_alias_refused_total":   "topic_alias_refused",
}

// labelsOfStats pairs each labelled mqttserver_ metric with its /stats object: the label's value
// is the key in the object, or the index in its array.
var labelsOfStats = map[string]string{
	"mqttserver_publish_received_total":       "received_by_qos.messages",
	"mqttserver_publish_received_bytes_total": "received_by_qos.bytes",
	"mqttserver_publish_sent_total":           "sent_by_qos.messages",
	"mqttserver_publish_sent_bytes_total":     "sent_by_qos.bytes",
	"mqttserver_drops_total":                  "dropped_by_reason",
	"mqttserver_connections_refused_total":    "connections_refused",
}

// seriesOfStats is /stats as the series /metrics should have: name{label} → value. The
// histogram gives its _count, _sum and _bucket series.
func seriesOfStats(stats map[string]any) map[string]float64 {
	out := map[string]float64{}
	for metric, field := range metricsOfStats {
		out[metric] = stats[field].(float64)
	}
	for metric, path := range labelsOfStats {
		field, sub, _ := strings.Cut(path, ".")
		v := stats[field]
		if sub != "" {
			v = v.(map[string]any)[sub]
		}
		switch v := v.(type) {
		case []any:
			for i, n := range v {
				out[fmt.Sprintf("%s{%d}", metric, i)] = n.(float64)
			}
		case map[string]any:
			for k, n := range v {
				out[metric+"{"+k+"}"] = n.(float64)
			}
		}
	}
	lat := stats["delivery_latency"].(map[string]any)
	out["mqttserver_delivery_latency_seconds_count"] = lat["count"].(float64)
	out["mqttserver_delivery_latency_seconds_sum"] = lat["sum_seconds"].(float64)
	for _, b := range lat["buckets"].([]any) {
		b := b.(map[string]any)
		out["mqttserver_delivery_latency_seconds_bucket{"+b["le"].(string)+"}"] = b["count"].(float64)
	}
	if size, ok := stats["data_file_bytes"]; ok {
		out["mqttserver_data_file_size_bytes"] = size.(float64)
		out["mqttserver_data_last_sync_timestamp_seconds"] = stats["data_last_sync"].(float64)
	}
	return out
}

// series is the mqttserver_ series of a scrape, named as seriesOfStats names them (listener_up
// aside).
func series(families map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, f := range families {
		if !strings.HasPrefix(name, "mqttserver_") || name == "mqttserver_listener_up" {
			continue
		}
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				out[name+"_count"] = float64(h.GetSampleCount())
				out[name+"_sum"] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[fmt.Sprintf("%s_bucket{%s}", name, strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))] = float64(b.GetCumulativeCount())
				}
				out[name+"_bucket{+Inf}"] = float64(h.GetSampleCount())
				continue
			}
			key := name
			if l := m.GetLabel(); len(l) == 1 {
				key += "{" + l[0].GetValue() + "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

// compareSeries lists the series that differ between /stats (want) and /metrics (got).
func compareSeries(want, got map[string]float64) []string {
	var differ []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			differ = append(differ, k+" missing on /metrics")
		} else if g != v {
			differ = append(differ, fmt.Sprintf("%s: /metrics %v, /stats %v", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			differ = append(differ, k+" on /metrics, not in /stats")
		}
	}
	slices.Sort(differ)
	return differ
}

// TestMetricsMatchStats: after traffic (a retained message, a persistent session left with a
// queued message, a refused subscription), /metrics parses as Prometheus' text format, passes
// `promtool check metrics`, has the Go and process collectors, no label but listener, and
// every mqttserver_ number equals /stats' as the broker stands still.
func TestMetricsMatchStats(t *testing.T) {
	cfg := Config{HTTPListen: "127.0.0.1:0", Limits: limits.DefaultLimits()}
	cfg.Limits.MaxSubscriptions = 1
	b, _ := startBroker(t, cfg)
	base := "http://" + b.endpointAddr(t, "http")

	keeper := connect(t, clientOpts(b.Addr(), "keeper").SetCleanSession(false))
	if err := wait(keeper.Subscribe("q/#", 1, nil)); err != nil {
		t.Fatal(err)
	}
	_ = keeper.Subscribe("r/#", 1, nil).WaitTimeout(waitTimeout) // refused: -max-subscriptions 1
	goOffline(t, b, keeper, "keeper")
	pub := connect(t, clientOpts(b.Addr(), "pub"))
	for _, topic := range []string{"q/1", "q/2", "r/1"} {
		if err := wait(pub.Publish(topic, 1, topic == "r/1", "m")); err != nil {
			t.Fatal(err)
		}
	}

	// mochi's $SYS tick may move a counter between the two requests, and it counts the PUBACK
	// to the publisher in flight until a moment after the publisher has it: ask again then.
	want := map[string]float64{"clients_connected": 1, "clients_total": 2, "clients_disconnected": 1,
		"inflight": 2, "subscriptions": 1, "subscriptions_refused": 1, "messages_received": 3}
	var families map[string]*dto.MetricFamily
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(100 * time.Millisecond) {
		stats := getJSON(t, base+"/stats")
		families = scrape(t, base+"/metrics")
		var differ []string
		differ = append(differ, compareSeries(seriesOfStats(stats), series(families))...)
		for field, v := range want {
			if got := stats[field].(float64); got != v {
				differ = append(differ, fmt.Sprintf("/stats %s = %v, want %v", field, got, v))
			}
		}
		if len(differ) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics and /stats differ, or not as the clients did:\n%s", strings.Join(differ, "\n"))
		}
	}
	for name, f := range families {
		if !strings.HasPrefix(name, "mqttserver_") {
			continue
		}
		_, paired := metricsOfStats[name]
		_, labelledPair := labelsOfStats[name]
		if !paired && !labelledPair && name != "mqttserver_listener_up" && name != "mqttserver_delivery_latency_seconds" {
			t.Errorf("%s has no /stats field in metricsOfStats or labelsOfStats", name)
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains([]string{"listener", "qos", "reason", "le"}, l.GetName()) {
					t.Errorf("%s has label %s: only labels the broker chooses the values of", name, l.GetName())
				}
			}
		}
	}
	up := map[string]float64{}
	for _, m := range families["mqttserver_listener_up"].GetMetric() {
		up[m.GetLabel()[0].GetValue()] = value(m)
	}
	if len(up) != 2 || up["mqtt"] != 1 || up["http"] != 1 {
		t.Errorf("mqttserver_listener_up %v, want mqtt and http at 1", up)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_gc_gomemlimit_bytes"} {
		if _, ok := families[name]; !ok {
			t.Errorf("no %s: the Go collector is missing", name)
		}
	}
	if _, ok := families["process_start_time_seconds"]; !ok && processMetricsExpected() {
		t.Error("no process_start_time_seconds: the process collector is missing")
	}

	promtool := mustPromtool(t)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = resp.Body
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// processMetricsExpected: client_golang's process collector reads /proc on Linux, and has no
// source on some other systems.
func processMetricsExpected() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// mustPromtool is the path of promtool (Debian's prometheus package). Without it the test is
// skipped, except in CI, which installs it.
func mustPromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool not found (apt-get install prometheus): %v", err)
		}
		t.Skip("promtool not found: apt-get install prometheus")
	}
	return path
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("/metrics Content-Type %q", ct)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%s: %v\n%s", url, err, body)
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// BenchmarkMetricsScrape is what one scrape of /metrics costs (over loopback HTTP, the body
// read). It is the only cost of the metrics: the collector reads /stats' snapshot when asked,
// and no hook or counter was added for them on a message's way through the broker.
//
//	go test -run '^$' -bench MetricsScrape mqttdemo/mqttserver/broker
func BenchmarkMetricsScrape(b *testing.B) {
	broker, _ := startBroker(b, Config{HTTPListen: "127.0.0.1:0"})
	url := "http://" + broker.endpointAddr(b, "http") + "/metrics"
	var size int64
	for b.Loop() {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		size, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("/metrics: %v %s", err, resp.Status)
		}
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// BenchmarkMetricsHotPath is the message flow of BenchmarkEventLog (QoS 0, publisher to
// subscriber over loopback) with -http-listen, nobody scraping, and scraped every 10 ms (100
// times as often as a 1 s scrape interval): the metrics cost a message nothing when nobody
// scrapes (no hook, no counter of their own), and scrapes cost what BenchmarkMetricsScrape says.
//
//	go test -run '^$' -bench MetricsHotPath -benchtime 200000x -count 5 mqttdemo/mqttserver/broker
func BenchmarkMetricsHotPath(b *testing.B) {
	for _, c := range []struct {
		name  string
		every time.Duration // 0: not scraped
	}{{"not-scraped", 0}, {"scraped-every-10ms", 10 * time.Millisecond}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := Config{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", noEvents: true, LogFormat: "json",
				LogLevel: slog.LevelInfo, Limits: limits.DefaultLimits()}
			broker, err := New(cfg, eventlog.NewLogger(cfg.logSettings(), io.Discard, noEnv),
				eventlog.LibraryLogger(cfg.logSettings(), io.Discard, false))
			if err != nil {
				b.Fatal(err)
			}
			if err := broker.Start(); err != nil {
				b.Fatal(err)
			}
			defer broker.Close()
			if c.every > 0 {
				url := "http://" + broker.endpointAddr(b, "http") + "/metrics"
				stop, done := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(done)
					tick := time.NewTicker(c.every)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						if resp, err := http.Get(url); err == nil {
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
					}
				}()
				defer func() { close(stop); <-done }()
			}
			benchFlow(b, broker.Addr())
		})
	}
}

// TestListenerUp: mqttserver_listener_up is 0 for a listener /healthz reports as failing, 1 for
// the others.
func TestListenerUp(t *testing.T) {
	for _, c := range []struct {
		name     string
		problems map[string]string
		want     string
	}{
		{"all accept", nil, "mqtt 1\nws 1\nhttp 1"},
		{"mqtt out of files", map[string]string{"mqtt": "accept: too many open files"}, "mqtt 0\nws 1\nhttp 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			col := statsCollector{stats: func() stats { return stats{Info: new(system.Info)} }, listeners: []string{"mqtt", "ws", "http"},
				problems: func() map[string]string { return c.problems }}
			want := "# HELP mqttserver_listener_up " + listenerUpHelp + "\n# TYPE mqttserver_listener_up gauge\n"
			for _, line := range strings.Split(c.want, "\n") {
				name, v, _ := strings.Cut(line, " ")
				want += `mqttserver_listener_up{listener="` + name + `"} ` + v + "\n"
			}
			if err := testutil.CollectAndCompare(col, strings.NewReader(want), "mqttserver_listener_up"); err != nil {
				t.Error(err)
			}
			if problems, err := testutil.CollectAndLint(col); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %v", problems, err)
			}
		})
	}
}

// TestMetricsByLabel: QoS 0, 1 and 2 messages to a subscriber, a message dropped past
// -max-queued-total, and a connection refused for its protocol level show in the labelled metrics as
// the clients did them, equal to /stats; the sums by label equal the totals; the delivery
// latency histogram has timed a message (1 in latencySample).
func TestMetricsByLabel(t *testing.T) {
	cfg := Config{HTTPListen: "127.0.0.1:0", Limits: limits.DefaultLimits()}
	cfg.Limits.MaxQueuedTotal = limits.QueuedOverhead + 1000 // one offline message fits, not two
	b, _ := startBroker(t, cfg)
	base := "http://" + b.endpointAddr(t, "http")

	keeper := connect(t, clientOpts(b.Addr(), "keeper").SetCleanSession(false))
	if err := wait(keeper.Subscribe("q/#", 1, nil)); err != nil {
		t.Fatal(err)
	}
	goOffline(t, b, keeper, "keeper")
	var got received
	sub := connect(t, clientOpts(b.Addr(), "sub"))
	if err := wait(sub.Subscribe("t/#", 2, got.handler)); err != nil {
		t.Fatal(err)
	}
	// A CONNECT of an unknown protocol level: refused with 0x01, unacceptable protocol level.
	conn, err := net.DialTimeout("tcp", b.Addr(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write(rawmqtt.Connect{ID: "x", Version: 7, KeepAlive: 60}.Encode()); err != nil {
		t.Fatal(err)
	}
	if ack, err := rawmqtt.Read(conn); err != nil || len(ack) != 4 || ack[3] != packets.Err3UnsupportedProtocolVersion.Code {
		t.Fatalf("CONNACK % x, %v; want 0x01", ack, err)
	}

	pub := connect(t, clientOpts(b.Addr(), "pub"))
	for _, topic := range []string{"q/1", "q/2"} { // q/2 is past -max-queued-total
		if err := wait(pub.Publish(topic, 1, false, "m")); err != nil {
			t.Fatal(err)
		}
	}
	const qos0 = latencySample // the 64th message received is timed
	for i := range qos0 {
		pub.Publish("t/0", 0, false, strconv.Itoa(i))
	}
	for qos := byte(1); qos <= 2; qos++ {
		if err := wait(pub.Publish("t/"+strconv.Itoa(int(qos)), qos, false, "m")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the subscriber's messages", func() bool { return len(got.list()) == qos0+2 })

	want := map[string]float64{
		"mqttserver_publish_received_total{0}": qos0, "mqttserver_publish_received_total{1}": 3,
		"mqttserver_publish_received_total{2}": 1,
		"mqttserver_publish_sent_total{0}":     qos0, "mqttserver_publish_sent_total{1}": 1, "mqttserver_publish_sent_total{2}": 1,
		"mqttserver_drops_total{memory_budget}":                1,
		"mqttserver_connections_refused_total{protocol_error}": 1,
		"mqttserver_delivery_latency_seconds_count":            1,
	}
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(100 * time.Millisecond) {
		stats := getJSON(t, base+"/stats")
		s := series(scrape(t, base+"/metrics"))
		differ := compareSeries(seriesOfStats(stats), s)
		for k, v := range want {
			if s[k] != v {
				differ = append(differ, fmt.Sprintf("%s = %v, want %v", k, s[k], v))
			}
		}
		for _, c := range []struct{ total, byLabel string }{
			{"mqttserver_messages_received_total", "mqttserver_publish_received_total"},
			{"mqttserver_messages_sent_total", "mqttserver_publish_sent_total"},
			{"mqttserver_messages_dropped_total", "mqttserver_drops_total"},
		} {
			sum := 0.0
			for k, v := range s {
				if strings.HasPrefix(k, c.byLabel+"{") && k != "mqttserver_drops_total{acl}" {
					sum += v
				}
			}
			if sum != s[c.total] {
				differ = append(differ, fmt.Sprintf("%s sum %v, %s %v", c.byLabel, sum, c.total, s[c.total]))
			}
		}
		if s["mqttserver_publish_received_bytes_total{0}"] < qos0*(2+2+3+1) { // header, topic, payload
			differ = append(differ, fmt.Sprintf("publish_received_bytes_total{0} %v", s["mqttserver_publish_received_bytes_total{0}"]))
		}
		if len(differ) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("labelled metrics not as the clients did, or not as /stats:\n%s", strings.Join(differ, "\n"))
		}
	}
}

// TestMetricsDataFile: with -data, the data file's size and last commit are on /stats and
// /metrics alike, the commit of a retained message moves the time no earlier; without -data
// neither has them (TestMetricsMatchStats compares all series both ways).
func TestMetricsDataFile(t *testing.T) {
	before := time.Now().Unix()
	cfg := Config{HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(), Limits: limits.DefaultLimits()}
	b, _ := startBroker(t, cfg)
	base := "http://" + b.endpointAddr(t, "http")
	pub := connect(t, clientOpts(b.Addr(), "pub"))
	if err := wait(pub.Publish("keep", 1, true, "m")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(100 * time.Millisecond) {
		stats := getJSON(t, base+"/stats")
		s := series(scrape(t, base+"/metrics"))
		differ := compareSeries(seriesOfStats(stats), s)
		size, last := s["mqttserver_data_file_size_bytes"], s["mqttserver_data_last_sync_timestamp_seconds"]
		if size <= 0 || last < float64(before) || last > float64(time.Now().Unix()) {
			differ = append(differ, fmt.Sprintf("data file size %v, last sync %v (started %d)", size, last, before))
		}
		if len(differ) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("data file metrics:\n%s", strings.Join(differ, "\n"))
		}
	}
}
