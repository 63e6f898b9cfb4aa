//go:build linux

// The test of this file shuts a listening socket of the broker down from outside, through a
// copy of its descriptor (pidfd_getfd, Linux 5.6 and later).

package tests

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"mqttdemo/tests/harness"
)

// TestListenerDeathStopsBroker: a listener whose socket stops listening for good (shut down
// under the broker: accept then fails with EINVAL) is logged and the broker exits 1, for
// Docker's restart policy or systemd to start it again. mochi's listeners returned from Serve
// silently, and net/http's Serve returned an error nobody read: the broker lived on deaf.
func TestListenerDeathStopsBroker(t *testing.T) {
	b := harness.Build(t)
	certs := genCerts(t)
	for _, name := range []string{"mqtt", "mqtts", "ws", "http"} {
		t.Run(name, func(t *testing.T) {
			server := harness.Start(t, "mqttserver", b.Server, nil, "-log-format", "json",
				"-listen", "127.0.0.1:0", "-tls-listen", "127.0.0.1:0",
				"-tls-cert", filepath.Join(certs, "server.crt"), "-tls-key", filepath.Join(certs, "server.key"),
				"-ws-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0")
			addr := startedAddrs(t, server)
			shutDownListener(t, server.Cmd.Process.Pid, addr[name])
			if code := server.Exit(t); code != 1 {
				t.Errorf("exit status %d after the %s listener stopped, want 1", code, name)
			}
			server.WaitFor(t, fmt.Sprintf(`"msg":"listener stopped","listener":"%s"`, name))
			server.WaitFor(t, fmt.Sprintf(`mqttserver: listener %s stopped: `, name))
		})
	}
}

// shutDownListener shuts down (SHUT_RD) the socket of process pid that listens on addr.
func shutDownListener(t *testing.T, pid int, addr string) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := strconv.Atoi(port)
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		target, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fd, err := unix.PidfdGetfd(pidfd, target, 0)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) {
			t.Skipf("pidfd_getfd: %v (needs Linux 5.6 and the right to trace the process)", err)
		}
		if err != nil {
			continue // closed meanwhile
		}
		sa, err := unix.Getsockname(fd)
		listening, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if in4, ok := sa.(*unix.SockaddrInet4); err == nil && ok && in4.Port == want && listening == 1 {
			err := unix.Shutdown(fd, unix.SHUT_RD)
			unix.Close(fd)
			if err != nil {
				t.Fatalf("shutdown %s: %v", addr, err)
			}
			return
		}
		unix.Close(fd)
	}
	t.Fatalf("no socket of process %d listens on %s", pid, addr)
}
