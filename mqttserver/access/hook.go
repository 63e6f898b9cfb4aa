// Package access is the broker's access control: the -auth file of users and their topic rules
// (users.go), the hook that checks every CONNECT, PUBLISH, SUBSCRIBE and delivery against it
// (hook.go), and the throttle that slows down password guessing (throttle.go). It logs through
// the event log's vocabulary and knows the health probe; it knows nothing of storage, limits or
// listeners: the assembly tells it what to do with a message it withholds (Withheld).
package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/health"
	"mqttdemo/shared/config"
)

// Hook decides who may connect and what each client may publish and subscribe to: the
// users and rules of the -auth file, or anyone when there is none. It is the only hook that
// allows anything (mochi refuses every client unless a hook allows it, and lets any hook's
// "yes" win), so the deny rules hold.
//
// What it checks, at CONNECT: the login (slowed down after failures, see loginThrottle), that
// the will topic is a topic name the user may publish to, and that a session with the client's
// id belongs to the same user; while connected: every PUBLISH, SUBSCRIBE and delivery; at a
// reload: the clients, their wills, and the wills mochi holds back for their delay.
type Hook struct {
	mqtt.HookBase
	server *mqtt.Server
	file   string                // the -auth file; "" is open access
	users  atomic.Pointer[Users] // nil: open access
	log    *slog.Logger
	denied *eventlog.LineCap // a client publishing in a loop to a forbidden topic must not flood the log
	logins *loginThrottle
	budget *loginBudget // password checks a second for addresses without a recent login
	// verified: the passwords bcrypt verified, accepted again without a check (verified.go)
	verified *verifiedLogins
	// suspectChecks lets one password check at a time run for addresses that failed recently:
	// a guessing flood then keeps at most one core busy with bcrypt, whatever its width.
	suspectChecks chan struct{}
	// Withheld is told of a queued message that is not resent because the client may no
	// longer read its topic (the -data store forgets it).
	Withheld func(cl *mqtt.Client, pk packets.Packet)
	// Reloaded is called when a reload has put new rules in force, before it is logged (the
	// live page checks its viewers again).
	Reloaded func()
	stop     chan struct{}

	claims claims
	wills  heldWills

	deniedPublishes atomic.Int64 // PUBLISH packets the rules refused, since the start
}

// Add installs the access hook: the users of authFile, or anyone (with a warning).
// maxFailedLogins is the budget of password checks a second for logins from addresses
// without a recent successful login (see loginBudget); 0 is none.
func Add(server *mqtt.Server, authFile string, maxFailedLogins int, log *slog.Logger) (*Hook, error) {
	h := &Hook{server: server, file: authFile, log: log, logins: newLoginThrottle(), budget: newLoginBudget(maxFailedLogins),
		verified: newVerifiedLogins(), suspectChecks: make(chan struct{}, 1),
		denied: eventlog.NewLineCap(log, slog.LevelInfo, eventlog.MsgDeniedMore), stop: make(chan struct{})}
	if authFile != "" {
		users, err := LoadUsers(authFile)
		if err != nil {
			return nil, err
		}
		h.users.Store(users)
	}
	if err := server.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("add access hook: %w", err)
	}
	if users := h.users.Load(); users != nil {
		log.Info("access restricted to the users of the auth file", "file", authFile,
			"users", len(users.Users), "anonymous", users.Anonymous != nil)
	} else {
		log.Warn("anonymous access: any client may connect, publish and subscribe to any topic")
	}
	return h, nil
}

func (h *Hook) ID() string { return "access" }

func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnACLCheck,
		mqtt.OnWill, mqtt.OnWillSent:
		return true
	}
	return false
}

// Init starts the once-a-second summaries; Stop writes the last ones and ends the waits of
// slowed-down logins.
func (h *Hook) Init(any) error {
	h.denied.Start()
	go h.logins.summarize(h.log, h.stop)
	return nil
}

func (h *Hook) Stop() error {
	close(h.stop)
	h.denied.Close()
	return nil
}

// Reload reads the -auth file again (on SIGHUP). A file that does not load is refused with one
// line and the rules in force stay. Clients whose user is gone are disconnected, and wills the
// new rules no longer allow are withdrawn, also those mochi holds back for their delay.
func (h *Hook) Reload() error {
	if h.file == "" {
		return nil
	}
	users, err := LoadUsers(h.file)
	if err != nil {
		h.log.Error("auth file not reloaded; the rules in force stay", "error", err)
		return err
	}
	h.users.Store(users)
	h.verified.reset() // what they verified stays tied to the old users, and is dropped at use anyway
	if h.Reloaded != nil {
		h.Reloaded()
	}
	h.log.Info(eventlog.MsgAuthReloaded, "file", h.file, "users", len(users.Users), "anonymous", users.Anonymous != nil)
	for _, cl := range h.server.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() {
			continue
		}
		if users.rules(cl.Properties.Username) == nil {
			h.log.Info(eventlog.MsgRevoked, "client", cl.ID, "username", string(cl.Properties.Username),
				"reason", "user no longer in the auth file")
			atomic.StoreUint32(&cl.Properties.Will.Flag, 0) // mochi would publish it for the error
			_ = h.server.DisconnectClient(cl, packets.ErrNotAuthorized)
			continue
		}
		h.checkWill(cl)
	}
	h.withdrawHeldWills(users)
	return nil
}

// OnConnect admits or refuses a client before mochi sets up its session: a refusal is
// answered here, with the CONNACK code that says why, and the connection is closed.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	users := h.users.Load()
	if users != nil {
		if err := h.login(users, cl, pk); err != nil {
			return err
		}
	}
	if pk.Connect.WillFlag {
		topic := pk.Connect.WillTopic
		if err := config.CheckTopic(topic); err != nil || strings.ContainsAny(topic, "+#") {
			return h.refuse(cl, packets.ErrTopicNameInvalid, "will topic is not a topic name", slog.String("will_topic", topic))
		}
		if !h.allows(users, pk.Connect.Username, topic, true) {
			return h.refuse(cl, packets.ErrNotAuthorized, "may not publish to the will topic", slog.String("will_topic", topic))
		}
	}
	if users == nil {
		return nil // without users, sessions have no owner to protect
	}
	existing, owner, ok := h.claims.take(h.server, cl)
	if !ok {
		return h.refuse(cl, packets.ErrNotAuthorized, "client id in use by another user's session",
			slog.String("owner", string(owner)))
	}
	if existing != nil && !pk.Connect.Clean {
		h.withholdUnreadable(users, existing)
	}
	return nil
}

// login checks the credentials, after the wait the login throttle imposes.
func (h *Hook) login(users *Users, cl *mqtt.Client, pk packets.Packet) error {
	user := string(pk.Connect.Username)
	probe := health.IsProbe(cl, pk.Connect.Username)
	ok, reason, slowed, err := h.checkLogin(users, remoteHost(cl.Net.Remote), pk.Connect.Username, pk.Connect.Password, probe)
	switch {
	case errors.Is(err, errThrottled):
		return h.refuse(cl, packets.ErrConnectionRateExceeded, "too many failed logins", slog.String("username", user))
	case err != nil:
		return err
	case ok:
		return nil
	}
	level := slog.LevelInfo
	if probe || slowed {
		// our own -healthcheck probe (a refusal is its expected answer), or a failure counted
		// in the throttle's once-a-second summary instead
		level = slog.LevelDebug
	}
	h.log.LogAttrs(context.Background(), level, eventlog.MsgAuthFailed,
		slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote),
		slog.String("username", user),
		slog.String("reason", reason))
	// mochi's own answer to a failed login: CONNACK 5 (not authorised) for MQTT 3.1.1, as
	// Mosquitto's, and 0x86 (bad user name or password) for MQTT 5.
	_ = h.server.SendConnack(cl, packets.ErrBadUsernameOrPassword, false, nil)
	return packets.ErrBadUsernameOrPassword
}

// errThrottled is a login refused unchecked: too many attempts wait already.
var errThrottled = errors.New("too many failed logins")

// checkLogin checks a password, MQTT's or the live page's, after the waits the login throttle
// imposes on host. It reports whether it is right, or why not; slowed when the failure goes
// into the throttle's summary rather than a line of its own. err is errThrottled for an
// attempt refused unchecked, or ErrServerShuttingDown. The probe's failures are not counted.
func (h *Hook) checkLogin(users *Users, host string, username, password []byte, probe bool) (ok bool, reason string, slowed bool, err error) {
	user := string(username)
	// The password bcrypt verified last for this user, from any address: nothing to slow down.
	if h.verified.match(users, username, password) {
		h.logins.succeeded(host, user)
		return true, "", false, nil
	}
	wait, suspect, admitted := h.logins.admit(host, user)
	if !admitted {
		if !h.sleep(refusedLoginDelay) {
			return false, "", false, packets.ErrServerShuttingDown
		}
		return false, "", false, errThrottled
	}
	defer h.logins.done(host)
	if !h.sleep(wait) {
		return false, "", false, packets.ErrServerShuttingDown
	}
	// An address that logged in before is not slowed by the guesses of others; any other
	// waits for the broker's budget of checks, or is refused unchecked.
	budgeted := !h.logins.isKnown(host)
	if budgeted {
		wait, ok := h.budget.take(maxBudgetWait)
		if !ok {
			h.logins.refusedUnchecked()
			if !h.sleep(refusedLoginDelay) {
				return false, "", false, packets.ErrServerShuttingDown
			}
			return false, "", false, errThrottled
		}
		if wait > 0 {
			h.logins.waited.Add(1)
		}
		if !h.sleep(wait) {
			return false, "", false, packets.ErrServerShuttingDown
		}
	}
	if suspect {
		t := time.NewTimer(maxLoginDelay)
		defer t.Stop()
		select {
		case h.suspectChecks <- struct{}{}:
			defer func() { <-h.suspectChecks }()
		case <-t.C:
			return false, "", false, errThrottled
		case <-h.stop:
			return false, "", false, packets.ErrServerShuttingDown
		}
	}
	ok, reason = users.authenticate(username, password)
	switch {
	case ok:
		if budgeted {
			h.budget.giveBack()
		}
		h.verified.remember(users, username, password)
		h.logins.succeeded(host, user)
	case !probe:
		slowed = h.logins.failed(host, user)
	}
	return ok, reason, slowed, nil
}

// LoginsFailed and LoginsRefused count, since the start, the logins whose password check
// failed and those refused unchecked (too many failures from the address or for the user, or
// the budget of checks spent), for /stats.
func (h *Hook) LoginsFailed() int64  { return h.logins.failedTotal.Load() }
func (h *Hook) LoginsRefused() int64 { return h.logins.refusedTotal.Load() }

// PublishesDenied counts the PUBLISH packets the rules refused since the start.
func (h *Hook) PublishesDenied() int64 { return h.deniedPublishes.Load() }

// sleep waits for d, or until the broker stops (false).
func (h *Hook) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.stop:
		return false
	}
}

// PageLogin checks the HTTP basic credentials of the live page. The page shows every topic,
// payload and client, so only a user of the auth file in force who may read everything anyway
// (subscribe to "#", no deny_subscribe rule) may open it; never anonymous. Failures are slowed
// down as an MQTT login's are.
func (h *Hook) PageLogin(remote, user, password string) bool {
	users := h.users.Load()
	if users == nil || user == "" {
		return false
	}
	ok, _, _, err := h.checkLogin(users, remoteHost(remote), []byte(user), []byte(password), false)
	if err != nil || !ok {
		return false
	}
	return users.mayView(user)
}

// PageViewer tells whether the credentials of a live-page stream still open the page under the
// rules in force: each open stream asks after a reload. The login throttle is not asked: the
// credentials were right when the stream was opened, and a stream cannot try others.
func (h *Hook) PageViewer(user, password string) bool {
	users := h.users.Load()
	if users == nil || user == "" {
		return false
	}
	ok, _ := users.authenticate([]byte(user), []byte(password))
	return ok && users.mayView(user)
}

// refuse answers CONNECT with code (MQTT 5) or its MQTT 3.1.1 counterpart, logs why, and
// returns the error that makes mochi close the connection.
func (h *Hook) refuse(cl *mqtt.Client, code packets.Code, reason string, attrs ...slog.Attr) error {
	level := slog.LevelInfo
	if code == packets.ErrConnectionRateExceeded {
		level = slog.LevelDebug // in the once-a-second summary of the login throttle
	}
	h.log.LogAttrs(context.Background(), level, eventlog.MsgConnectRefused, append([]slog.Attr{
		slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote),
		slog.String("username", string(cl.Properties.Username)),
		slog.String("reason", reason),
	}, attrs...)...)
	answer := code
	if cl.Properties.ProtocolVersion < 5 {
		// 3.1.1 has no code for a bad will topic or a rate; "not authorised" and "server
		// unavailable" are the nearest.
		answer = packets.Err3NotAuthorized
		if code == packets.ErrConnectionRateExceeded {
			answer = packets.Err3ServerUnavailable
		}
	}
	_ = h.server.SendConnack(cl, answer, false, nil)
	return code
}

// OnConnectAuthenticate lets in every client OnConnect did not refuse.
func (h *Hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnSessionEstablished checks the will once more: the auth file may have been reloaded between
// OnConnect and now, when Reload could not see this client yet. The session exists now: the
// client id's claim is done. mochi has dropped any will it held back for the id.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.claims.release(cl)
	h.wills.forget(cl.ID, nil)
	h.checkWill(cl)
}

// checkWill withdraws cl's will if the rules in force no longer let it publish there.
func (h *Hook) checkWill(cl *mqtt.Client) {
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 0 {
		return
	}
	if h.allows(h.users.Load(), cl.Properties.Username, cl.Properties.Will.TopicName, true) {
		return
	}
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0) // mochi's sendLWT skips a will without its flag
	h.log.Info(eventlog.MsgWillWithdrawn, "client", cl.ID, "username", string(cl.Properties.Username),
		"topic", cl.Properties.Will.TopicName, "reason", "may no longer publish to the will topic")
}

// withholdUnreadable takes out of a session about to be resumed the queued messages its user
// may no longer read (the auth file was reloaded since they were queued), so they are not resent.
func (h *Hook) withholdUnreadable(users *Users, existing *mqtt.Client) {
	rules := users.rules(existing.Properties.Username)
	for _, pk := range existing.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type != packets.Publish || rules.allows(pk.TopicName, false) {
			continue
		}
		if !existing.State.Inflight.Delete(pk.PacketID) {
			continue
		}
		atomic.AddInt64(&h.server.Info.Inflight, -1)
		if h.Withheld != nil {
			h.Withheld(existing, pk)
		}
		h.log.Info(eventlog.MsgWithheld, "client", existing.ID, "topic", pk.TopicName,
			"reason", "may no longer read the topic")
	}
}

// OnACLCheck is asked for each PUBLISH a client sends (write), each filter it subscribes to
// and each message delivered to it (read). Topics under $SYS are the broker's own: no client
// may publish there.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.allows(h.users.Load(), cl.Properties.Username, topic, write) {
		return true
	}
	if write {
		h.deniedPublishes.Add(1)
	}
	if write && h.denied.Allow() {
		h.log.LogAttrs(context.Background(), slog.LevelInfo, eventlog.MsgPublishDenied,
			slog.String("client", cl.ID),
			slog.String("username", string(cl.Properties.Username)),
			slog.String("topic", topic))
	}
	return false
}

// allows applies the rules of username (everything, without users) to topic.
func (h *Hook) allows(users *Users, username []byte, topic string, write bool) bool {
	if write && (topic == "$SYS" || strings.HasPrefix(topic, "$SYS/")) {
		return false
	}
	if users == nil {
		return true
	}
	return users.rules(username).allows(topic, write)
}

// remoteHost is the address of remote without its port.
func remoteHost(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}
