package broker

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestRefusalOf: a refusing CONNACK's code gives its reason label, MQTT 3.1.1's five codes
// (below 0x80) and MQTT 5's alike.
func TestRefusalOf(t *testing.T) {
	for _, c := range []struct {
		code byte
		want string
	}{
		{packets.Err3UnsupportedProtocolVersion.Code, "protocol_error"},
		{packets.Err3ClientIdentifierNotValid.Code, "client_id_invalid"},
		{packets.Err3ServerUnavailable.Code, "server_busy"},
		{packets.ErrMalformedUsernameOrPassword.Code, "bad_credentials"}, // 3.1.1's 4
		{packets.Err3NotAuthorized.Code, "not_authorised"},
		{6, "other"},
		{packets.ErrBadUsernameOrPassword.Code, "bad_credentials"},
		{packets.ErrNotAuthorized.Code, "not_authorised"},
		{packets.ErrBanned.Code, "not_authorised"},
		{packets.ErrConnectionRateExceeded.Code, "throttled"},
		{packets.ErrClientIdentifierNotValid.Code, "client_id_invalid"},
		{packets.ErrServerBusy.Code, "server_busy"},
		{packets.ErrQuotaExceeded.Code, "server_busy"},
		{packets.ErrProtocolViolation.Code, "protocol_error"},
		{packets.ErrUnsupportedProtocolVersion.Code, "protocol_error"},
		{packets.ErrUnspecifiedError.Code, "other"},
	} {
		if got := refusalReasons[refusalOf(c.code)]; got != c.want {
			t.Errorf("code 0x%02x: %s, want %s", c.code, got, c.want)
		}
	}
}
