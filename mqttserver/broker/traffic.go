package broker

import (
	"strconv"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/limits"
)

// The traffic counts by QoS, refusals and the delivery latency are taken in package limits,
// where the broker already sees every packet (limits/traffic.go); this is their /stats form.

// latencySample: 1 PUBLISH received in latencySample is timed.
const latencySample = limits.LatencySample

// latencyBuckets are the delivery latency histogram's upper bounds, in seconds.
var latencyBuckets = limits.LatencyBuckets

// qosTraffic is the messages and bytes of each QoS, for /stats.
type qosTraffic struct {
	Messages [3]int64 `json:"messages"`
	Bytes    [3]int64 `json:"bytes"`
}

func toQoSTraffic(messages, bytes [3]int64) qosTraffic { return qosTraffic{messages, bytes} }

// refusalReasons are the values of the reason label of refused connections, a closed set: the
// CONNACK's reason code, grouped. MQTT 3.1.1 has five codes: the broker answers a 3.1.1 client
// refused for bad credentials with 5 (not authorised) as Mosquitto does, and a throttled one or
// one past -max-sessions with 3 (server unavailable), so they count as not_authorised and
// server_busy.
var refusalReasons = [...]string{"bad_credentials", "not_authorised", "throttled", "client_id_invalid",
	"server_busy", "protocol_error", "other"}

const (
	refusedBadCredentials = iota
	refusedNotAuthorised
	refusedThrottled
	refusedClientID
	refusedBusy
	refusedProtocol
	refusedOther
)

// refusalOf is the reason index of a refusing CONNACK's code. The code tells the protocol
// version: MQTT 3.1.1's refusals are 1 to 5, MQTT 5's 0x80 and above (§3.2.2.2).
func refusalOf(code byte) int {
	if code < 0x80 {
		switch code {
		case packets.Err3UnsupportedProtocolVersion.Code:
			return refusedProtocol
		case packets.Err3ClientIdentifierNotValid.Code:
			return refusedClientID
		case packets.Err3ServerUnavailable.Code:
			return refusedBusy
		case packets.ErrMalformedUsernameOrPassword.Code: // mochi's name for 3.1.1's 4, bad user name or password
			return refusedBadCredentials
		case packets.Err3NotAuthorized.Code:
			return refusedNotAuthorised
		}
		return refusedOther
	}
	switch code {
	case packets.ErrBadUsernameOrPassword.Code:
		return refusedBadCredentials
	case packets.ErrNotAuthorized.Code, packets.ErrBanned.Code:
		return refusedNotAuthorised
	case packets.ErrConnectionRateExceeded.Code:
		return refusedThrottled
	case packets.ErrClientIdentifierNotValid.Code:
		return refusedClientID
	case packets.ErrServerUnavailable.Code, packets.ErrServerBusy.Code, packets.ErrQuotaExceeded.Code:
		return refusedBusy
	case packets.ErrMalformedPacket.Code, packets.ErrProtocolViolation.Code, packets.ErrUnsupportedProtocolVersion.Code:
		return refusedProtocol
	}
	return refusedOther
}

// refusals are the connections refused by reason, for /stats.
type refusals map[string]int64

func refusalsOf(t *limits.Traffic) refusals {
	var by [len(refusalReasons)]int64
	for code := 1; code < 256; code++ {
		by[refusalOf(byte(code))] += t.Refused(byte(code))
	}
	r := make(refusals, len(refusalReasons))
	for i, name := range refusalReasons {
		r[name] = by[i]
	}
	return r
}

// latencyStats is the histogram for /stats: cumulative counts by upper bound, as Prometheus'.
type latencyStats struct {
	SampledOneIn int             `json:"sampled_one_in"`
	Count        int64           `json:"count"`
	SumSeconds   float64         `json:"sum_seconds"`
	Buckets      []latencyBucket `json:"buckets"`
}

type latencyBucket struct {
	LE    string `json:"le"` // seconds, or +Inf
	Count int64  `json:"count"`
}

func latencyOf(t *limits.Traffic) latencyStats {
	// The sum is read after the buckets; an observation between the reads would make the count
	// exceed +Inf's: the count is the buckets' total.
	buckets, sumUS := t.Latency()
	s := latencyStats{SampledOneIn: latencySample, Buckets: make([]latencyBucket, 0, len(buckets))}
	var cum int64
	for i, n := range buckets {
		cum += n
		le := "+Inf"
		if i < len(latencyBuckets) {
			le = strconv.FormatFloat(latencyBuckets[i], 'g', -1, 64)
		}
		s.Buckets = append(s.Buckets, latencyBucket{le, cum})
	}
	s.Count = cum
	s.SumSeconds = float64(sumUS) / 1e6
	return s
}
