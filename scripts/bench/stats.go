package main

import (
	"math"
	"slices"
	"time"
)

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of samples; it sorts samples.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	rank := int(math.Ceil(p / 100 * float64(len(samples))))
	return samples[min(max(rank, 1), len(samples))-1]
}

// spread is the median and range of a set of values (NaN values are ignored).
type spread struct {
	Median, Min, Max float64
	N                int
}

func summarize(values []float64) spread {
	var v []float64
	for _, x := range values {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return spread{Median: m, Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// ratios divides a by b round by round: the brokers of one round ran back to back, so each
// ratio compares like with like even when the machine's load drifts between rounds.
func ratios(a, b []float64) []float64 {
	out := make([]float64, 0, len(a))
	for i := range min(len(a), len(b)) {
		if b[i] == 0 || math.IsNaN(a[i]) || math.IsNaN(b[i]) {
			out = append(out, math.NaN())
			continue
		}
		out = append(out, a[i]/b[i])
	}
	return out
}
