package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The wait between two Accepts that failed, as net/http's Server.Serve: from acceptRetryMin,
// doubling, to acceptRetryMax.
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

// acceptSettled is how long an Accept after errors must wait without one for the listener to
// count as accepting again: a port nobody connects to after the errors is not failing.
const acceptSettled = 100 * time.Millisecond

// The log lines of the listeners.
const (
	msgAcceptFailing  = "accept failing"  // warn, at the first error, then at most once a second
	msgAcceptingAgain = "accepting again" // info, at the first connection after errors
	msgListenerDied   = "listener stopped"
)

// steadyListener is a net.Listener whose Accept waits out the errors that pass (out of file
// descriptors, above all) instead of returning them: mochi's listeners return from Serve at the
// first Accept error (listeners/net.go:62), and the port stays deaf for good. Every listener of
// the broker accepts through one. An error that will not pass (the socket closed under it) is
// returned and handed to died, unless Close was called first.
type steadyListener struct {
	net.Listener
	name string // mqtt, mqtts, ws, http
	log  *slog.Logger
	died func(name string, err error)

	closed    atomic.Bool
	closing   chan struct{} // closed by Close: ends a wait between retries
	attempts  atomic.Int64  // Accept calls on the socket, to tell the one acceptSettled watches
	closeOnce sync.Once
	problem   atomic.Pointer[string] // what /healthz reports; nil while accepting
	errors    atomic.Int64           // errors waited out, for /stats
}

func newSteadyListener(ln net.Listener, name string, log *slog.Logger, died func(string, error)) *steadyListener {
	return &steadyListener{Listener: ln, name: name, log: log, died: died, closing: make(chan struct{})}
}

// Accept returns the next connection. The first error is logged at once, then at most one line
// a second sums up the errors since the last one.
func (l *steadyListener) Accept() (net.Conn, error) {
	var (
		wait            time.Duration
		failures, total int // since the last line; since the first error
		first, logged   time.Time
		why             *string // the problem last logged
	)
	for {
		attempt := l.attempts.Add(1)
		var settled *time.Timer
		if total > 0 {
			failing := why
			settled = time.AfterFunc(acceptSettled, func() {
				if l.attempts.Load() == attempt {
					l.problem.CompareAndSwap(failing, nil)
				}
			})
		}
		c, err := l.Listener.Accept()
		if settled != nil {
			settled.Stop()
		}
		if err == nil {
			if total > 0 {
				l.problem.Store(nil)
				l.log.Info(msgAcceptingAgain, "listener", l.name, "errors", total,
					"failed_for", time.Since(first).Round(time.Millisecond).String())
			}
			return c, nil
		}
		if l.closed.Load() {
			return nil, err
		}
		if !transient(err) {
			why := "stopped: " + err.Error()
			l.problem.Store(&why)
			l.died(l.name, err)
			return nil, err
		}
		l.errors.Add(1)
		now := time.Now()
		failures++
		total++
		if total == 1 {
			first = now
		}
		if logged.IsZero() || now.Sub(logged) >= time.Second {
			text := "accept failing since " + first.Format(time.RFC3339) + ": " + err.Error()
			why = &text
			l.log.Warn(msgAcceptFailing, "listener", l.name, "error", err.Error(), "errors", failures,
				"failing_for", now.Sub(first).Round(time.Millisecond).String())
			failures, logged = 0, now
		}
		l.problem.Store(why) // again at every error: acceptSettled may have cleared it
		wait = min(max(2*wait, acceptRetryMin), acceptRetryMax)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.closing:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

// Close stops Accept; the error Accept returns then is not a listener's death.
func (l *steadyListener) Close() error {
	l.closed.Store(true)
	l.closeOnce.Do(func() { close(l.closing) })
	return l.Listener.Close()
}

// Problem is what keeps the listener from accepting, or "" while it accepts.
func (l *steadyListener) Problem() string {
	if p := l.problem.Load(); p != nil {
		return *p
	}
	return ""
}

// transient tells whether an Accept error may pass: too many open files (the process's or the
// system's), no memory or buffers for the new socket, or an error of the connection being
// accepted, which Linux reports from accept(2) (its manual lists these for TCP). The listener
// closed under us, or any other error, will not.
func transient(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var t interface{ Temporary() bool } // deprecated for timeouts only; net/http relies on it here too
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.EPROTO, syscall.ENOPROTOOPT, syscall.ENETDOWN, syscall.EHOSTDOWN, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.EOPNOTSUPP, syscall.ECONNABORTED, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
