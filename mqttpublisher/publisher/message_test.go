package publisher

import (
	"fmt"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	now := time.Date(2026, 11, 25, 19, 7, 42, 123456789, time.FixedZone("CET", 3600))
	for _, c := range []struct{ template, want string }{
		{DefaultMessage, "time:2026-11-25T18:07:42.123Z"},
		{"#{n} from {id}", "#7 from pub-1"},
		{"{n}{n}", "77"},
		{"plain", "plain"},
		{"{unknown} {", "{unknown} {"},
		{"", ""},
	} {
		if got := Render(c.template, 7, "pub-1", now); got != c.want {
			t.Errorf("Render(%q) = %q, want %q", c.template, got, c.want)
		}
	}
}

func ExampleRender() {
	at := time.Date(2026, 11, 25, 19, 7, 42, 5e6, time.UTC)
	fmt.Println(Render("time:{time}", 1, "pub", at))
	fmt.Println(Render("reading {n} of {id}", 2, "sensor-9", at))
	// Output:
	// time:2026-11-25T19:07:42.005Z
	// reading 2 of sensor-9
}
