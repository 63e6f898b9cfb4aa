package eventlog

import (
	"mqttdemo/shared/console"
)

// The messages of the broker's event lines, for every part that logs one: the article's five
// client events, start and stop, and the other events of docs/events.md. Tests and the
// console's tags (eventStyles) find an event by its message.
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

	// message expiry (package limits): the messages whose MQTT 5 expiry passed, summed up
	MsgMessagesExpired = "messages expired"

	// the once-a-second summary of the subscriptions refused past the lines logged one by one
	MsgSubRefusedMore = "more subscriptions refused"
)

// eventStyles gives each event message its tag and colour on the console.
var eventStyles = map[string]struct {
	tag   string
	style console.Style
}{
	MsgConnected:     {"CONNECTED", console.StyleGood},
	MsgDisconnected:  {"DISCONNECTED", console.StyleWarn},
	MsgPublished:     {"PUBLISHED", console.StyleMessage},
	MsgSubscribed:    {"SUBSCRIBED", console.StyleSubscribe},
	MsgUnsubscribed:  {"UNSUBSCRIBED", console.StyleUnsubscribe},
	MsgStarted:       {"STARTED", console.StyleGood},
	MsgStopped:       {"STOPPED", console.StyleInfo},
	MsgAuthFailed:    {"AUTH-FAILED", console.StyleError},
	MsgPublishDenied: {"DENIED", console.StyleError},
	MsgRestored:      {"RESTORED", console.StyleGood},
	MsgPublishedMore: {"PUBLISHED", console.StyleMessage},
	MsgDeniedMore:    {"DENIED", console.StyleError},
	MsgDropped:       {"DROPPED", console.StyleWarn},
	MsgSubRefused:    {"SUB-REFUSED", console.StyleError},
	MsgWillSent:      {"WILL", console.StyleWarn},
	MsgExpired:       {"EXPIRED", console.StyleInfo},
	// access control (package access)
	MsgConnectRefused: {"REFUSED", console.StyleError},
	MsgWillWithdrawn:  {"WILL-WITHDRAWN", console.StyleWarn},
	MsgWithheld:       {"WITHHELD", console.StyleWarn},
	MsgAuthReloaded:   {"RELOADED", console.StyleGood},
	MsgLoginsSlowed:   {"THROTTLED", console.StyleWarn},
	MsgRevoked:        {"REVOKED", console.StyleWarn},
	// message expiry (package limits)
	MsgMessagesExpired: {"EXPIRED", console.StyleInfo},

	MsgSubRefusedMore: {"SUB-REFUSED", console.StyleError},
}

// summaries are the once-a-second lines of capped events (see LineCap), and what they count.
var summaries = map[string]string{MsgPublishedMore: "messages published", MsgDeniedMore: "publishes denied",
	MsgSubRefusedMore: "subscriptions refused"}
