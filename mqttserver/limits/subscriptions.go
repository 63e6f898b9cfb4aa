package limits

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Defaults of the subscription limits. One client subscribing to 100,000 filters grew the
// broker by 315 MB. A short filter costs about 1.7 KB; each level of a filter is a node of
// mochi's topic tree, about 640 bytes, so 1,000 filters of 512 levels (1,024 bytes of "a/a/…")
// held 327 MB (measured on this machine, Go 1.26).
const (
	// DefaultMaxSubscriptions is the filters one session may hold: 20 times the 50 AWS IoT Core
	// allows a connection; the demo's subscriber holds one, a Home Assistant hub one or a few
	// per entity.
	DefaultMaxSubscriptions = 1000
	// DefaultMaxFilterLength is the longest filter in bytes: four times the 256 bytes of an
	// AWS IoT Core topic.
	DefaultMaxFilterLength = 1024
	// DefaultMaxFilterLevels is the most levels of a filter (Mosquitto refuses more than 200,
	// AWS IoT Core 8): 1,000 filters of 32 levels hold about 20 MB.
	DefaultMaxFilterLevels = 32
)

// SubscriptionHook refuses the filters of a SUBSCRIBE past -max-subscriptions (the session
// holds that many other filters already: SUBACK 0x97 quota exceeded, 0x80 for MQTT 3.1.1)
// or longer than -max-filter-length or -max-filter-levels (0x8F topic filter invalid, 0x80). A filter the session
// holds already replaces its subscription and is not refused for the session's count; a filter
// refused holds nothing, so it does not count. The count is the session's, whatever restored it
// (a resumed session, the -data file). One packet's filters past -max-subscriptions are refused
// too, copies of a filter included.
//
// mochi's OnSubscribe can change the filters but not refuse one, and only its own checks set a
// filter's reason code (processSubscribe, server.go:1237). So OnSubscribe swaps a refused
// filter for an empty one, which mochi refuses (0x8F) and does not subscribe; OnSubscribed,
// which mochi calls with the codes of the SUBACK it has built and not yet sent, puts the filter
// back for the hooks after it (the event log) and sets the code. It must come before them.
type SubscriptionHook struct {
	mqtt.HookBase
	maxFilters int // 0 is no limit
	maxLength  int // bytes; 0 is no limit
	maxLevels  int // 0 is no limit
	refused    atomic.Int64

	mu      sync.Mutex
	pending map[*mqtt.Client][]refusal // between a client's OnSubscribe and OnSubscribed
}

// refusal is a filter of a SUBSCRIBE refused here: its index in the packet, the filter, and
// the MQTT 5 reason code.
type refusal struct {
	i      int
	filter string
	code   byte
}

// NewSubscriptionHook returns the hook of the subscription limits of l.
func NewSubscriptionHook(l Limits) *SubscriptionHook {
	return &SubscriptionHook{maxFilters: l.MaxSubscriptions, maxLength: l.MaxFilterLength, maxLevels: l.MaxFilterLevels,
		pending: make(map[*mqtt.Client][]refusal)}
}

func (h *SubscriptionHook) ID() string { return "subscription-limits" }

func (h *SubscriptionHook) Provides(b byte) bool {
	return (b == mqtt.OnSubscribe || b == mqtt.OnSubscribed) && (h.maxFilters > 0 || h.maxLength > 0 || h.maxLevels > 0)
}

// Refused is the number of filters refused since the start, for /stats.
func (h *SubscriptionHook) Refused() int64 { return h.refused.Load() }

// OnSubscribe swaps the filters to refuse for an empty one (see SubscriptionHook).
func (h *SubscriptionHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	held := cl.State.Subscriptions.Len()
	var refused []refusal
	var added map[string]bool // new filters of this packet, counted once for the session
	granted := 0              // filters of this packet let through, copies included
	filters := pk.Filters
	for i, f := range pk.Filters {
		var code byte
		switch _, holds := cl.State.Subscriptions.Get(f.Filter); {
		case h.maxLength > 0 && len(f.Filter) > h.maxLength,
			h.maxLevels > 0 && strings.Count(f.Filter, "/") >= h.maxLevels:
			code = packets.ErrTopicFilterInvalid.Code
		case !mqtt.IsValidFilter(f.Filter, false):
			continue // mochi refuses it itself
		case h.maxFilters > 0 && granted >= h.maxFilters:
			// One packet carries at most -max-subscriptions filters, copies included: mochi
			// sends the retained messages again for each copy (as MQTT-3.8.4-3 wants, and
			// Mosquitto does), and one SUBSCRIBE of 150,000 copies of # over 1,000 retained
			// messages kept the broker busy for 3.5 minutes on both cores (Mosquitto: it served
			// no one for 45 s).
			code = packets.ErrQuotaExceeded.Code
		case holds || added[f.Filter]:
			granted++
			continue // replaces a subscription held
		case h.maxFilters > 0 && held >= h.maxFilters:
			code = packets.ErrQuotaExceeded.Code
		default:
			if added == nil {
				added = make(map[string]bool)
			}
			added[f.Filter] = true
			held++
			granted++
			continue
		}
		if refused == nil {
			filters = slices.Clone(pk.Filters) // the packet read stays as the client sent it
		}
		refused = append(refused, refusal{i: i, filter: f.Filter, code: code})
		filters[i].Filter = ""
	}
	if refused != nil {
		pk.Filters = filters
		h.mu.Lock()
		h.pending[cl] = refused
		h.mu.Unlock()
	}
	return pk
}

// OnSubscribed puts the refused filters back and sets their reason codes in the SUBACK.
func (h *SubscriptionHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	h.mu.Lock()
	refused := h.pending[cl]
	delete(h.pending, cl)
	h.mu.Unlock()
	for _, r := range refused {
		if r.i >= len(pk.Filters) || r.i >= len(codes) {
			continue
		}
		pk.Filters[r.i].Filter = shortFilter(r.filter)
		// mochi's own code for the empty filter: 0x8F, 0x80 for MQTT 3.1.1. Another (0x91, the
		// packet id in use) refused the whole packet.
		switch codes[r.i] {
		case packets.ErrTopicFilterInvalid.Code:
			codes[r.i] = r.code
		case packets.ErrUnspecifiedError.Code:
		default:
			continue
		}
		h.refused.Add(1)
	}
}

// shortFilter is filter cut for a log line.
func shortFilter(filter string) string {
	keep := 64
	if len(filter) <= keep {
		return filter
	}
	for keep > 0 && !utf8.RuneStart(filter[keep]) {
		keep--
	}
	return filter[:keep] + "…"
}
