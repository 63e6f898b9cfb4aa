package eventlog

import "mqttdemo/shared"

// The messages of the events hook: the article's five client events, start and stop, and the
// other events of docs/events.md.
const (
	MsgConnected     = "client connected"
	MsgDisconnected  = "client disconnected"
	MsgPublished     = "message published"
	MsgPublishedMore = "more messages published"
	MsgSubscribed    = "topic subscribed"
	MsgSubRefused    = "subscription refused"
	MsgUnsubscribed  = "topic unsubscribed"
	MsgStarted       = "server started"
	MsgStopped       = "server stopped"
	MsgAuthFailed    = "authentication failed"
	MsgPublishDenied = "publish denied"
	MsgDeniedMore    = "more publishes denied"
	MsgRestored      = "session restored"
	MsgLoaded        = "loaded from the data file"
	MsgDropped       = "message dropped"
	MsgWillSent      = "will message published"
	MsgExpired       = "session expired"
	MsgPacketIn      = "packet received"
	MsgPacketOut     = "packet sent"

	// access control (package access)
	MsgConnectRefused = "connection refused"
	MsgAuthReloaded   = "auth file reloaded"
	MsgWillWithdrawn  = "will withdrawn"
	MsgWithheld       = "queued message not resent"
	MsgLoginsSlowed   = "failed logins slowed down"
	MsgRevoked        = "access revoked"
)

// eventStyles gives each event message of the hook its tag and colour on the console.
var eventStyles = map[string]struct {
	tag   string
	style shared.Style
}{
	MsgConnected:     {"CONNECTED", shared.StyleGood},
	MsgDisconnected:  {"DISCONNECTED", shared.StyleWarn},
	MsgPublished:     {"PUBLISHED", shared.StyleMessage},
	MsgSubscribed:    {"SUBSCRIBED", shared.StyleSubscribe},
	MsgUnsubscribed:  {"UNSUBSCRIBED", shared.StyleUnsubscribe},
	MsgStarted:       {"STARTED", shared.StyleGood},
	MsgStopped:       {"STOPPED", shared.StyleInfo},
	MsgAuthFailed:    {"AUTH-FAILED", shared.StyleError},
	MsgPublishDenied: {"DENIED", shared.StyleError},
	MsgRestored:      {"RESTORED", shared.StyleGood},
	MsgPublishedMore: {"PUBLISHED", shared.StyleMessage},
	MsgDeniedMore:    {"DENIED", shared.StyleError},
	MsgDropped:       {"DROPPED", shared.StyleWarn},
	MsgSubRefused:    {"SUB-REFUSED", shared.StyleError},
	MsgWillSent:      {"WILL", shared.StyleWarn},
	MsgExpired:       {"EXPIRED", shared.StyleInfo},
	// access control (package access)
	MsgConnectRefused: {"REFUSED", shared.StyleError},
	MsgWillWithdrawn:  {"WILL-WITHDRAWN", shared.StyleWarn},
	MsgWithheld:       {"WITHHELD", shared.StyleWarn},
	MsgAuthReloaded:   {"RELOADED", shared.StyleGood},
	MsgLoginsSlowed:   {"THROTTLED", shared.StyleWarn},
	MsgRevoked:        {"REVOKED", shared.StyleWarn},
}

// summaries are the once-a-second lines of capped events (see LineCap), and what they count.
var summaries = map[string]string{MsgPublishedMore: "messages published", MsgDeniedMore: "publishes denied"}
