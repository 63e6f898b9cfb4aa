package main

import (
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, c := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 50, 3 * time.Millisecond}, // unsorted input
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},    // nearest rank: ceil(0.5×4) = 2nd
		{ms(1, 2, 3, 4), 100, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
	} {
		if got := percentile(c.in, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", c.in, c.p, got, c.want)
		}
	}
}

func TestSummarizeAndRatios(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		name string
		a, b []float64
		want spread
	}{
		{"odd", []float64{2, 6, 3}, []float64{1, 2, 1}, spread{Median: 3, Min: 2, Max: 3, N: 3}},
		{"even", []float64{1, 2, 3, 4}, []float64{1, 1, 1, 1}, spread{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{"gaps skipped", []float64{nan, 4, 9}, []float64{1, 2, 0}, spread{Median: 2, Min: 2, Max: 2, N: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := summarize(ratios(c.a, c.b)); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
	if got := summarize(nil); !math.IsNaN(got.Median) || got.N != 0 {
		t.Errorf("summarize(nil) = %+v, want NaN median", got)
	}
}

func TestRotationInterleaves(t *testing.T) {
	first := map[int]bool{}
	for r := range 4 {
		order := rotation(4, r)
		seen := map[int]bool{}
		for _, i := range order {
			seen[i] = true
		}
		if len(seen) != 4 {
			t.Fatalf("rotation(4, %d) = %v: not every broker once", r, order)
		}
		first[order[0]] = true
	}
	if len(first) != 4 {
		t.Errorf("over 4 rounds only brokers %v ran first", first)
	}
}

func sampleResults() *results {
	res := newResults([]string{"Mosquitto", "ours", "mochi"}, 3)
	for r, v := range [][3]float64{{100, 120, 125}, {100, 90, 110}, {50, 60, 50}} {
		res.add("flood 1→1", mThroughput, "Mosquitto", r, v[0])
		res.add("flood 1→1", mThroughput, "ours", r, v[1])
		res.add("flood 1→1", mThroughput, "mochi", r, v[2])
		res.add("10k/s", mP99, "Mosquitto", r, 2)
		res.add("10k/s", mP99, "ours", r, 1)
		res.add("10k/s", mP99, "mochi", r, 1)
	}
	res.addDrops("flood 1→1", "mochi", 7)
	return res
}

func TestTable(t *testing.T) {
	table := sampleResults().table("ours", "mochi")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header, rule and 2 rows, got:\n%s", table)
	}
	for _, want := range []string{
		"| Case | Metric | Mosquitto (median) | ours ÷ Mosquitto | mochi ÷ Mosquitto | ours ÷ mochi | Lost deliveries |",
		// Ratios per round: ours/Mosquitto 1.2, 0.9, 1.2; mochi/Mosquitto 1.25, 1.1, 1.0.
		"| flood 1→1 | throughput (msg/s) | 100 | 1.20× (0.90–1.20) | 1.10× (1.00–1.25) | 0.96× (0.82–1.20) | 0 / 0 / 7 |",
		"| 10k/s | p99 latency (ms) | 2.00 | 0.50× (0.50–0.50) | 0.50× (0.50–0.50) | 1.00× (1.00–1.00) | – |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

func TestTargets(t *testing.T) {
	checks := sampleResults().targets("ours", "mochi")
	if len(checks) != 4 {
		t.Fatalf("want 4 targets, got %d", len(checks))
	}
	if !checks[0].Met || !checks[1].Met || !checks[2].Met {
		t.Errorf("throughput 1.20× Mosquitto, 0.96× mochi and p99 0.5× should meet their targets: %+v", checks)
	}
	res := sampleResults()
	res.add("flood 1→1", mThroughput, "ours", 0, 10)
	res.add("flood 1→1", mThroughput, "ours", 2, 10)
	got := renderTargets(res.targets("ours", "mochi"))
	if !strings.Contains(got, "**missed**: ours throughput ≥ 1.0× Mosquitto in every throughput case — flood 1→1: 0.20×") {
		t.Errorf("missed target not reported:\n%s", got)
	}
}

func TestChartSVG(t *testing.T) {
	svg := sampleResults().chartSVG()
	if !strings.HasPrefix(svg, "<svg ") || !strings.HasSuffix(svg, "</svg>\n") {
		t.Fatalf("not an SVG document:\n%s", svg)
	}
	for _, want := range []string{"flood 1→1 — throughput", "10k/s — p99 latency", "ours: 1.20× (0.90–1.20)", ">1.0×<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestParseProc(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	stat := "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 1000 200"
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s (300 ticks)", cpu, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("parseStatCPU(garbage): want an error")
	}
	rss, err := parseVmRSS("Name:\tmosquitto\nVmPeak:\t 9999 kB\nVmRSS:\t    6144 kB\nThreads: 1\n")
	if err != nil || rss != 6144*1024 {
		t.Errorf("parseVmRSS = %d, %v; want 6 MiB", rss, err)
	}
	if _, err := parseVmRSS("Name: x\n"); err == nil {
		t.Error("parseVmRSS without VmRSS: want an error")
	}
}

func TestKeepAnalysis(t *testing.T) {
	for _, c := range []struct{ name, old, want string }{
		{"no old report", "", "new\n"},
		{"old report without analysis", "old table\n", "new\n"},
		{"analysis kept, old results dropped", "old table\n" + analysisMarker + "\nfindings\n", "new\n\n" + analysisMarker + "\nfindings\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := keepAnalysis("new\n", c.old); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestReportPaths: the report goes to -dir (default bench-out in the repository, which git
// ignores); only -update-docs rewrites the tracked BENCHMARKS.md and docs/benchmarks.svg.
func TestReportPaths(t *testing.T) {
	bins := []string{"-mqttserver", "s", "-mochi", "m", "-repo", "/r"}
	for _, c := range []struct {
		name             string
		args             []string
		out, chart, link string
		err              string
	}{
		{"default", nil, "/r/bench-out/BENCHMARKS.md", "/r/bench-out/benchmarks.svg", "benchmarks.svg", ""},
		{"dir", []string{"-dir", "x/y"}, "x/y/BENCHMARKS.md", "x/y/benchmarks.svg", "benchmarks.svg", ""},
		{"update docs", []string{"-update-docs"}, "/r/BENCHMARKS.md", "/r/docs/benchmarks.svg", "docs/benchmarks.svg", ""},
		{"update docs and dir", []string{"-update-docs", "-dir", "x"}, "", "", "", "not with -dir"},
		{"update docs and only", []string{"-update-docs", "-only", "QoS1"}, "", "", "", "not with -update-docs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseFlags(append(bins, c.args...), io.Discard)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one saying %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.out != filepath.FromSlash(c.out) || o.chart != filepath.FromSlash(c.chart) || o.chartLink != c.link {
				t.Errorf("out %q, chart %q, link %q; want %q, %q, %q", o.out, o.chart, o.chartLink, c.out, c.chart, c.link)
			}
		})
	}
}

// TestWorkloads: case names key the table's rows and -only, so they must be unique; -quick is a
// subset of the full run; the loads of issue 22 are there.
func TestWorkloads(t *testing.T) {
	full := map[string]bool{}
	for _, w := range workloads(false) {
		if full[w.String()] {
			t.Errorf("case %q twice", w)
		}
		full[w.String()] = true
	}
	for _, w := range workloads(true) {
		if !full[w.String()] {
			t.Errorf("quick case %q is not in the full run", w)
		}
	}
	for _, want := range []string{
		"1000 each 20→0 QoS0 64B", "1000 each 20→0 QoS1 64B", "1000 each 20→0 QoS2 64B",
		"flood 1→1 QoS0 64KB", "flood 1→1 QoS1 64KB",
		"flood 1→100 QoS0 64B", "flood 1→100 QoS1 64B",
		"500/s 1→1000 topics QoS1 64B",
		"mosquitto_pub→sub QoS0 4KB", "mosquitto_pub→sub QoS1 4KB",
	} {
		if !full[want] {
			t.Errorf("no case %q", want)
		}
	}
}
