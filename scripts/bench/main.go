// Command bench measures mqttserver against bare mochi-mqtt and Mosquitto on this machine:
// delivered messages per second (closed-loop flood; messages the broker took, where nobody
// subscribes), end-to-end latency at a fixed rate, broker CPU per message and RSS per idle
// connection, and loads driven by mosquitto_pub and mosquitto_sub. It starts every broker itself on free loopback
// ports, interleaves them in each round and reports each broker's ratio to Mosquitto (median and
// range over the rounds) as a markdown table and an SVG chart. Run it through scripts/bench.sh,
// which builds the brokers:
//
//	scripts/bench.sh -quick        # under 2 minutes
//	scripts/bench.sh               # the full run, about 20 minutes
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"mqttdemo/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	quick                bool
	rounds               int
	flood, rate          time.Duration
	conns, memRounds     int
	dir, repo            string
	updateDocs           bool
	out, chart           string // where the report and the chart go, from -dir or -update-docs
	mqttserver, mochi    string
	mosquitto, chartLink string
	only                 string
	mochiArgs            string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bench -mqttserver PATH -mochi PATH [-mosquitto PATH] [-quick] [flags]\n\nflags:")
		fs.PrintDefaults()
	}
	fs.BoolVar(&o.quick, "quick", false, "fewer cases and shorter runs: under 2 minutes")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every case on every broker, brokers interleaved")
	fs.DurationVar(&o.flood, "flood", 0, "publishing time of one flood run (default 2s, -quick 600ms)")
	fs.DurationVar(&o.rate, "rate-time", 0, "publishing time of one fixed-rate run (default 2s, -quick 1s)")
	fs.IntVar(&o.conns, "conns", 10000, "idle connections for the memory measurement")
	fs.IntVar(&o.memRounds, "mem-rounds", 0, "rounds of the memory measurement (default -rounds, -quick 1)")
	fs.StringVar(&o.dir, "dir", "", "`directory` to write BENCHMARKS.md and benchmarks.svg in (default: bench-out in -repo, which git ignores)")
	fs.StringVar(&o.repo, "repo", ".", "the repository's `root`")
	fs.BoolVar(&o.updateDocs, "update-docs", false, "rewrite the repository's BENCHMARKS.md (keeping its hand-written analysis) and docs/benchmarks.svg instead of -dir")
	fs.StringVar(&o.mqttserver, "mqttserver", "", "mqttserver `binary`")
	fs.StringVar(&o.mochi, "mochi", "", "baremochi `binary` (scripts/bench/baremochi)")
	fs.StringVar(&o.mosquitto, "mosquitto", "/usr/sbin/mosquitto", "mosquitto `binary`")
	fs.StringVar(&o.mochiArgs, "mochi-args", "", "experiment: extra baremochi `flags`, space-separated (e.g. \"-max-pending-writes 1024\")")
	fs.StringVar(&o.only, "only", "", "run only the cases whose name contains this `text` (e.g. \"QoS1\"; a check, not a report)")
	fs.Uint64Var(&load.FloodWindow, "window", load.FloodWindow, "flood: most messages a publisher has sent and not every subscriber received")
	fs.Int64Var(&load.FloodInflight, "inflight", load.FloodInflight, "flood: most QoS 1/2 publishes a publisher has not had acknowledged by the broker")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.mqttserver == "" || o.mochi == "" {
		fs.Usage()
		return o, errors.New("-mqttserver and -mochi are required (scripts/bench.sh builds them)")
	}
	if o.rounds < 1 || o.conns < 1 {
		return o, errors.New("-rounds and -conns must be at least 1")
	}
	if o.flood == 0 {
		o.flood = pick(o.quick, 600*time.Millisecond, 2*time.Second)
	}
	if o.rate == 0 {
		o.rate = pick(o.quick, time.Second, 2*time.Second)
	}
	if o.memRounds == 0 {
		o.memRounds = pick(o.quick, 1, o.rounds)
	}
	switch {
	case o.updateDocs && o.dir != "":
		return o, errors.New("-update-docs writes the repository's documents: not with -dir")
	case o.updateDocs && o.only != "":
		return o, errors.New("-only is a check, not a report: not with -update-docs")
	case o.updateDocs:
		o.out, o.chart = filepath.Join(o.repo, "BENCHMARKS.md"), filepath.Join(o.repo, "docs", "benchmarks.svg")
		o.chartLink = "docs/benchmarks.svg"
	default:
		if o.dir == "" {
			o.dir = filepath.Join(o.repo, "bench-out")
		}
		o.out, o.chart = filepath.Join(o.dir, "BENCHMARKS.md"), filepath.Join(o.dir, "benchmarks.svg")
		o.chartLink = "benchmarks.svg"
	}
	return o, nil
}

func pick[T any](quick bool, q, full T) T {
	if quick {
		return q
	}
	return full
}

// workloads lists the cases: every scenario × QoS × payload size as a flood, and the latency
// cases at 1k and 10k msg/s (64 B; every QoS for 1→1, QoS 1 for fan-in and fan-out); then the
// loads of issue 22, where Mosquitto led: 20 publishers × 1,000 messages with no subscriber (as a
// widely used Go MQTT load tool runs), 64 KB floods, fan-out to 100, 1,000 mostly idle
// subscribers with a trickle, and 4 KB through mosquitto_pub -l → mosquitto_sub. -quick keeps a
// few of each kind.
func workloads(quick bool) []load.Workload {
	var ws []load.Workload
	noSub := func(q byte) load.Workload {
		// Window 1, each message its own write: like for like with that tool.
		return load.Workload{Scn: load.NoSub, QoS: q, Size: 64, Count: 1000, Inflight: 1}
	}
	tools := func(q byte) load.Workload {
		return load.Workload{Scn: load.MosquittoTools, QoS: q, Size: 4096, Count: pick(quick, 5000, 20000)}
	}
	if quick {
		for _, q := range []byte{0, 1, 2} {
			ws = append(ws, load.Workload{Scn: load.OneToOne, QoS: q, Size: 64})
		}
		ws = append(ws, load.Workload{Scn: load.FanOut, QoS: 1, Size: 64})
		for _, r := range []int{1000, 10000} {
			ws = append(ws, load.Workload{Scn: load.OneToOne, QoS: 1, Size: 64, Rate: r})
		}
		return append(ws, noSub(1), tools(0))
	}
	for _, scn := range []load.Scenario{load.OneToOne, load.FanIn, load.FanOut} {
		for _, size := range []int{64, 4096} {
			for _, q := range []byte{0, 1, 2} {
				ws = append(ws, load.Workload{Scn: scn, QoS: q, Size: size})
			}
		}
	}
	for _, r := range []int{1000, 10000} {
		for _, q := range []byte{0, 1, 2} {
			ws = append(ws, load.Workload{Scn: load.OneToOne, QoS: q, Size: 64, Rate: r})
		}
		ws = append(ws, load.Workload{Scn: load.FanIn, QoS: 1, Size: 64, Rate: r})
		ws = append(ws, load.Workload{Scn: load.FanOut, QoS: 1, Size: 64, Rate: r})
	}
	for _, q := range []byte{0, 1, 2} {
		ws = append(ws, noSub(q))
	}
	for _, q := range []byte{0, 1} {
		// 8 × 64 KB in flight: half of mqttserver's default -max-queued-bytes, so that no broker
		// is pushed into dropping by the window alone.
		ws = append(ws, load.Workload{Scn: load.OneToOne, QoS: q, Size: 64 << 10, Window: 8})
	}
	for _, q := range []byte{0, 1} {
		ws = append(ws, load.Workload{Scn: load.FanOut100, QoS: q, Size: 64})
	}
	ws = append(ws, load.Workload{Scn: load.Trickle, QoS: 1, Size: 64, Rate: trickleRate, Fresh: true})
	return append(ws, tools(0), tools(1))
}

// trickleRate is the total rate of the Trickle case: each of its 1,000 subscribers gets a message
// every two seconds.
const trickleRate = 500

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if _, err := raiseFileLimit(); err != nil {
		return fmt.Errorf("raise the open-file limit: %w", err)
	}
	// Made at the start, so that a path that cannot be written fails before the measurements.
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return fmt.Errorf("the report's directory: %w", err)
	}
	fmt.Fprintf(stderr, "bench: the report goes to %s, the chart to %s\n", o.out, o.chart)
	dir, err := os.MkdirTemp("", "mqttbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // Mosquitto may drop to its own user
		return err
	}
	started := time.Now()
	load0 := loadAvg()
	specs := brokerSpecs(o.mqttserver, o.mochi, o.mosquitto, strings.Fields(o.mochiArgs))
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	ours, mochi := specs[1].Name, specs[3].Name
	res := newResults(names, max(o.rounds, o.memRounds))
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Since(started).Truncate(time.Second)}, a...)...)
	}

	// Memory first, each broker fresh.
	for r := range o.memRounds {
		for _, i := range rotation(len(specs), r) {
			fresh, churned, err := idleMemory(ctx, specs[i], dir, o.conns)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				res.addFailure(fmt.Sprintf("memory round %d, %s: %v", r+1, specs[i].Name, err))
				logf("memory round %d %-16s FAILED: %v", r+1, specs[i].Name, err)
				continue
			}
			logf("memory round %d %-16s %7.1f KB per idle connection, %7.1f KB after churn", r+1, specs[i].Name, fresh/1024, churned/1024)
			res.add(fmt.Sprintf("%d idle connections", o.conns), mRSS, specs[i].Name, r, fresh/1024)
			res.add(fmt.Sprintf("%d idle connections after churn", o.conns), mRSS, specs[i].Name, r, churned/1024)
		}
	}

	procs := make([]*brokerProc, len(specs))
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.stop()
			}
		}
	}()
	for i, s := range specs {
		if procs[i], err = startBroker(ctx, s, dir); err != nil {
			return err
		}
	}
	// Warm-up: connections, the Go runtime's heap and the CPU frequency settle before measuring.
	for i, p := range procs {
		for _, w := range []load.Workload{{Scn: load.OneToOne, QoS: 1, Size: 64}, {Scn: load.FanOut, QoS: 0, Size: 4096}} {
			if _, err := measure(ctx, p, w, min(o.flood, time.Second), fmt.Sprintf("warm%d", i)); err != nil {
				return fmt.Errorf("warm-up %s: %w", p.spec.Name, err)
			}
		}
	}
	var ws []load.Workload
	toolsErr := load.MosquittoClients()
	for _, w := range workloads(o.quick) {
		if !strings.Contains(w.String(), o.only) {
			continue
		}
		if w.Scn.Tools && toolsErr != nil {
			res.addSkipped(fmt.Sprintf("%s: %v", w, toolsErr))
			logf("skipped %s: %v", w, toolsErr)
			continue
		}
		ws = append(ws, w)
	}
	for r := range o.rounds {
		for wi, w := range ws {
			d := o.flood
			if w.Rate > 0 {
				d = o.rate
			}
			for _, i := range rotation(len(procs), r+wi) {
				p := procs[i]
				got, err := measureCase(ctx, p, w, d, dir, fmt.Sprintf("r%dw%db%d", r, wi, i))
				if err != nil {
					if ctx.Err() != nil {
						return err
					}
					if dead := p.alive(); dead != nil {
						// Record it and carry on with a new process: one crash must not void the run.
						res.addFailure(fmt.Sprintf("round %d, %s: %v", r+1, w, dead))
						logf("round %d %-26s %-16s FAILED: %v; restarting it", r+1, w, p.spec.Name, dead)
						if procs[i], err = startBroker(ctx, p.spec, dir); err != nil {
							return err
						}
						continue
					}
					// One failed run (a client disconnected, a stall) leaves a gap, not a dead run.
					res.addFailure(fmt.Sprintf("round %d, %s on %s: %v", r+1, w, p.spec.Name, err))
					logf("round %d %-26s %-16s FAILED: %v", r+1, w, p.spec.Name, err)
					continue
				}
				record(res, w, p.spec.Name, r, got)
				logf("round %d %-26s %-16s %s", r+1, w, p.spec.Name, describe(w, got))
			}
		}
	}

	report := renderReport(res, o, ours, mochi, reportConditions{
		Started: started, Took: time.Since(started), LoadStart: load0, LoadEnd: loadAvg(),
		CPU: cpuModel(), Mosquitto: mosquittoVersion(o.mosquitto),
	})
	fmt.Fprint(stdout, report)
	if old, err := os.ReadFile(o.out); err == nil {
		report = keepAnalysis(report, string(old))
	}
	if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(o.chart, []byte(res.chartSVG()), 0o644); err != nil {
		return err
	}
	logf("report: %s, chart: %s", o.out, o.chart)
	return nil
}

// rotation is the broker order of round r: A B C D, then B C D A, … so no broker always runs
// first or last.
func rotation(n, r int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = (i + r) % n
	}
	return order
}

// measureCase runs one workload once against broker p, or for a Fresh workload against a new
// process of the same broker, stopped afterwards.
func measureCase(ctx context.Context, p *brokerProc, w load.Workload, d time.Duration, dir, runID string) (load.Result, error) {
	if !w.Fresh {
		return measure(ctx, p, w, d, runID)
	}
	fresh, err := startBroker(ctx, p.spec, dir)
	if err != nil {
		return load.Result{}, err
	}
	// Killed, not stopped, as in the memory measurement: its graceful close measures nothing.
	defer fresh.kill()
	return measure(ctx, fresh, w, d, runID)
}

// measure runs one workload once against a running broker, with fresh connections.
func measure(ctx context.Context, p *brokerProc, w load.Workload, d time.Duration, runID string) (load.Result, error) {
	if err := p.alive(); err != nil {
		return load.Result{}, err
	}
	if w.Scn.Tools {
		cpu0, err := cpuTime(p.pid())
		if err != nil {
			return load.Result{}, err
		}
		got, err := load.RunMosquittoClients(ctx, p.addr, w, runID)
		cpu1, cerr := cpuTime(p.pid())
		if err = errors.Join(err, cerr); err != nil {
			return load.Result{}, errors.Join(err, p.alive())
		}
		got.CPU = cpu1 - cpu0
		return got, nil
	}
	s, err := load.Connect(ctx, p.addr, w, runID)
	if err != nil {
		return load.Result{}, err
	}
	cpu0, err := cpuTime(p.pid())
	if err != nil {
		s.Close()
		return load.Result{}, err
	}
	got, err := s.Run(ctx, d)
	cpu1, cerr := cpuTime(p.pid())
	if w.Fresh && err == nil && cerr == nil {
		got.RSS, cerr = rssBytes(p.pid()) // with the clients still connected
	}
	s.Close()
	if err != nil {
		return load.Result{}, errors.Join(err, p.alive())
	}
	if cerr != nil {
		return load.Result{}, cerr
	}
	got.CPU = cpu1 - cpu0
	got.Latencies = s.Latencies()
	return got, nil
}

func record(res *results, w load.Workload, broker string, r int, got load.Result) {
	c := w.String()
	res.addDrops(c, broker, got.Expected-got.Delivered)
	if got.Messages() == 0 {
		return
	}
	if w.Rate == 0 {
		res.add(c, mThroughput, broker, r, got.Throughput())
		res.add(c, mCPU, broker, r, float64(got.CPU.Microseconds())/float64(got.Messages()))
		return
	}
	res.add(c, mP50, broker, r, ms(percentile(got.Latencies, 50)))
	res.add(c, mP99, broker, r, ms(percentile(got.Latencies, 99)))
	if w.Fresh {
		res.add(c, mCPUPerSecond, broker, r, cpuPerSecond(got))
		res.add(c, mBrokerRSS, broker, r, float64(got.RSS)/(1<<20))
	}
}

// cpuPerSecond is the broker's CPU in ms per second of the run.
func cpuPerSecond(got load.Result) float64 {
	return ms(got.CPU) / max(got.Elapsed.Seconds(), 1e-3)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func describe(w load.Workload, got load.Result) string {
	lost := ""
	if got.Expected != got.Delivered {
		lost = fmt.Sprintf(" lost %d/%d", got.Expected-got.Delivered, got.Expected)
	}
	if w.Rate == 0 {
		return fmt.Sprintf("%9.0f msg/s  cpu %5.2f µs/msg%s", got.Throughput(), float64(got.CPU.Microseconds())/math.Max(1, float64(got.Messages())), lost)
	}
	fresh := ""
	if w.Fresh {
		fresh = fmt.Sprintf("  cpu %5.1f ms/s  rss %5.1f MB", cpuPerSecond(got), float64(got.RSS)/(1<<20))
	}
	return fmt.Sprintf("p50 %6.3f ms  p99 %6.3f ms%s%s", ms(percentile(got.Latencies, 50)), ms(percentile(got.Latencies, 99)), fresh, lost)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return fmt.Sprintf("%s × %d", strings.TrimSpace(v), runtime.NumCPU())
		}
	}
	return fmt.Sprintf("%d CPUs", runtime.NumCPU())
}

func mosquittoVersion(path string) string {
	out, _ := exec.Command(path, "-h").CombinedOutput()
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}
