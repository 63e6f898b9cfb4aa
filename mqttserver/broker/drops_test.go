package broker

import "testing"

func TestIsPowerOf10(t *testing.T) {
	for _, c := range []struct {
		n    int
		want bool
	}{{0, false}, {1, true}, {2, false}, {9, false}, {10, true}, {11, false}, {20, false}, {100, true}, {1000, true}, {1001, false}} {
		if got := isPowerOf10(c.n); got != c.want {
			t.Errorf("isPowerOf10(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}
