package publisher

import (
	"strconv"
	"strings"
	"time"
)

// DefaultMessage is the article's payload: "time:" and the current time.
const DefaultMessage = "time:{time}"

// TimeLayout is RFC 3339 with milliseconds, in UTC: 2026-11-25T19:07:42.123Z.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Render fills the message template for message number n.
func Render(template string, n int, id string, now time.Time) string {
	if !strings.Contains(template, "{") {
		return template
	}
	return strings.NewReplacer(
		"{time}", now.UTC().Format(TimeLayout),
		"{n}", strconv.Itoa(n),
		"{id}", id,
	).Replace(template)
}
