package main

import (
	"fmt"
	"math"
	"strings"
)

// metric is one measured quantity of a case.
type metric struct {
	Name        string
	Unit        string
	LowerBetter bool
}

var (
	mThroughput = metric{"throughput", "msg/s", false}
	mCPU        = metric{"broker CPU", "µs/msg", true}
	mP50        = metric{"p50 latency", "ms", true}
	mP99        = metric{"p99 latency", "ms", true}
	mRSS        = metric{"RSS per idle connection", "KB", true}
	// The Trickle case: CPU per second of the run, and the whole broker's RSS at its end.
	mCPUPerSecond = metric{"broker CPU", "ms/s", true}
	mBrokerRSS    = metric{"broker RSS", "MB", true}
)

type rowKey struct {
	Case   string
	Metric metric
}

// results holds every value measured, per row, broker and round.
type results struct {
	Brokers  []string // Brokers[0] is the reference (Mosquitto)
	Rows     []rowKey
	Values   map[rowKey]map[string][]float64
	Drops    map[string]map[string]int64 // case → broker → deliveries lost, over all rounds
	Rounds   int
	Failures []string
	Skipped  []string // cases not run, and why
}

func (res *results) addFailure(what string) { res.Failures = append(res.Failures, what) }

func (res *results) addSkipped(what string) { res.Skipped = append(res.Skipped, what) }

func newResults(brokers []string, rounds int) *results {
	return &results{Brokers: brokers, Rounds: rounds, Values: map[rowKey]map[string][]float64{}, Drops: map[string]map[string]int64{}}
}

// add records value for (case, metric, broker) in round r.
func (res *results) add(c string, m metric, broker string, r int, value float64) {
	k := rowKey{c, m}
	byBroker, ok := res.Values[k]
	if !ok {
		byBroker = map[string][]float64{}
		res.Values[k] = byBroker
		res.Rows = append(res.Rows, k)
	}
	v := byBroker[broker]
	for len(v) < res.Rounds {
		v = append(v, math.NaN())
	}
	v[r] = value
	byBroker[broker] = v
}

func (res *results) addDrops(c, broker string, n int64) {
	if res.Drops[c] == nil {
		res.Drops[c] = map[string]int64{}
	}
	res.Drops[c][broker] += n
}

// ratio summarises broker/other over the rounds of a row.
func (res *results) ratio(k rowKey, broker, other string) spread {
	return summarize(ratios(res.Values[k][broker], res.Values[k][other]))
}

func (res *results) absolute(k rowKey, broker string) spread {
	return summarize(res.Values[k][broker])
}

func fmtRatio(s spread) string {
	if math.IsNaN(s.Median) {
		return "–"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f×", s.Median)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

func fmtValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// table renders the results as markdown: the reference's median value, then each other broker
// as median (min–max) of its per-round ratio to the reference, then ours against bare mochi.
func (res *results) table(ours, mochi string) string {
	ref := res.Brokers[0]
	var b strings.Builder
	b.WriteString("| Case | Metric | " + ref + " (median) |")
	for _, br := range res.Brokers[1:] {
		b.WriteString(" " + br + " ÷ " + ref + " |")
	}
	b.WriteString(" " + ours + " ÷ " + mochi + " | Lost deliveries |\n")
	b.WriteString("|---|---|---:|" + strings.Repeat("---:|", len(res.Brokers)-1) + "---:|---|\n")
	for _, k := range res.Rows {
		fmt.Fprintf(&b, "| %s | %s (%s) | %s |", k.Case, k.Metric.Name, k.Metric.Unit, fmtValue(res.absolute(k, ref).Median))
		for _, br := range res.Brokers[1:] {
			b.WriteString(" " + fmtRatio(res.ratio(k, br, ref)) + " |")
		}
		b.WriteString(" " + fmtRatio(res.ratio(k, ours, mochi)) + " |")
		drops := "–"
		if d, ok := res.Drops[k.Case]; ok && (k.Metric == mThroughput || k.Metric == mP99) {
			var parts []string
			for _, br := range res.Brokers {
				parts = append(parts, fmt.Sprint(d[br]))
			}
			drops = strings.Join(parts, " / ")
		}
		b.WriteString(" " + drops + " |\n")
	}
	return b.String()
}

// targetCheck is one target of the issue, evaluated on medians.
type targetCheck struct {
	Text   string
	Met    bool
	Misses []string
}

func (res *results) targets(ours, mochi string) []targetCheck {
	ref := res.Brokers[0]
	checks := []targetCheck{
		{Text: fmt.Sprintf("%s throughput ≥ 1.0× %s in every throughput case", ours, ref), Met: true},
		{Text: fmt.Sprintf("%s throughput ≥ 0.9× %s in every throughput case", ours, mochi), Met: true},
		{Text: fmt.Sprintf("%s p99 latency ≤ %s's in every fixed-rate case", ours, ref), Met: true},
		{Text: fmt.Sprintf("%s RSS per idle connection ≤ %s's", ours, mochi), Met: true},
	}
	miss := func(i int, k rowKey, s spread) {
		checks[i].Met = false
		checks[i].Misses = append(checks[i].Misses, fmt.Sprintf("%s: %.2f×", k.Case, s.Median))
	}
	for _, k := range res.Rows {
		switch k.Metric {
		case mThroughput:
			if s := res.ratio(k, ours, ref); !(s.Median >= 1.0) {
				miss(0, k, s)
			}
			if s := res.ratio(k, ours, mochi); !(s.Median >= 0.9) {
				miss(1, k, s)
			}
		case mP99:
			if s := res.ratio(k, ours, ref); !(s.Median <= 1.0) {
				miss(2, k, s)
			}
		case mRSS:
			if s := res.ratio(k, ours, mochi); !(s.Median <= 1.0) {
				miss(3, k, s)
			}
		}
	}
	return checks
}

func renderTargets(checks []targetCheck) string {
	var b strings.Builder
	for _, c := range checks {
		if c.Met {
			fmt.Fprintf(&b, "- met: %s\n", c.Text)
			continue
		}
		fmt.Fprintf(&b, "- **missed**: %s — %s\n", c.Text, strings.Join(c.Misses, "; "))
	}
	return b.String()
}
