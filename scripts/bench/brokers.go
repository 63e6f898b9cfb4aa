package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"mqttdemo/bench/load"
)

// brokerSpec says how to start one broker on a given port.
type brokerSpec struct {
	Name    string // column heading
	Command func(addr, dir string) (*exec.Cmd, error)
}

// brokerSpecs are the four brokers, in the order of the table; Mosquitto is the reference.
// mochiArgs are extra baremochi flags for an experiment (normally none).
func brokerSpecs(mqttserver, mochi, mosquitto string, mochiArgs []string) []brokerSpec {
	return []brokerSpec{
		{"Mosquitto", func(addr, dir string) (*exec.Cmd, error) {
			host, port, _ := net.SplitHostPort(addr)
			conf := filepath.Join(dir, "mosquitto-"+port+".conf")
			text := fmt.Sprintf("listener %s %s\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nlog_dest none\n", port, host)
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				return nil, err
			}
			return exec.Command(mosquitto, "-c", conf), nil
		}},
		{"mqttserver", func(addr, _ string) (*exec.Cmd, error) {
			return exec.Command(mqttserver, "-listen", addr), nil
		}},
		{"mqttserver warn", func(addr, _ string) (*exec.Cmd, error) {
			return exec.Command(mqttserver, "-listen", addr, "-log-level", "warn"), nil
		}},
		{"bare mochi", func(addr, _ string) (*exec.Cmd, error) {
			return exec.Command(mochi, append([]string{"-listen", addr}, mochiArgs...)...), nil
		}},
	}
}

type brokerProc struct {
	spec   brokerSpec
	cmd    *exec.Cmd
	addr   string
	stderr *bytes.Buffer
	done   chan struct{}
}

// lockedBuffer keeps the first bytes a broker writes to stderr, for error messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 4096 {
		l.b.Write(p)
	}
	return len(p), nil
}

// startBroker starts spec on a free loopback port and waits until it accepts connections. The
// broker's stdout (our broker's log) goes to /dev/null: formatting and writing each line is
// measured, a terminal or disk is not.
func startBroker(ctx context.Context, spec brokerSpec, dir string) (*brokerProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd, err := spec.Command(addr, dir)
	if err != nil {
		return nil, err
	}
	cmd.Env = brokerEnv()
	stderr := new(bytes.Buffer)
	cmd.Stderr = &lockedBuffer{b: stderr}
	cmd.Stdout = nil // /dev/null
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	b := &brokerProc{spec: spec, cmd: cmd, addr: addr, stderr: stderr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(b.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		select {
		case <-b.done:
			return nil, fmt.Errorf("%s exited at start: %s", spec.Name, strings.TrimSpace(stderr.String()))
		case <-ctx.Done():
			b.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("%s does not accept connections on %s", spec.Name, addr)
		}
	}
}

// brokerEnv is our environment without MQTT_* variables, so a user's settings cannot change
// what the benchmark measures.
func brokerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MQTT_") {
			env = append(env, kv)
		}
	}
	return env
}

func (b *brokerProc) pid() int { return b.cmd.Process.Pid }

func (b *brokerProc) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

func (b *brokerProc) kill() {
	_ = b.cmd.Process.Kill()
	<-b.done
}

func (b *brokerProc) alive() error {
	select {
	case <-b.done:
		return fmt.Errorf("%s exited (%s): %s", b.spec.Name, b.cmd.ProcessState, strings.TrimSpace(b.stderr.String()))
	default:
		return nil
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cpuTime is the user+system CPU time a process has used, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(data))
}

// clockTick is USER_HZ, 100 on every Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

func parseStatCPU(stat string) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	// After the name: state(3) ... utime(14) stime(15); f[0] is field 3.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc stat: %w", err)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// rssBytes is a process's resident set size (VmRSS in /proc/PID/status).
func rssBytes(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(data))
}

func parseVmRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("unexpected VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// idleMemory starts a fresh broker, opens n idle MQTT connections to it and returns the growth of
// its RSS per connection, in bytes: fresh, and after churn (those n closed and n new ones
// opened: memory the runtime reuses must be zeroed, so it is resident again — what a broker that
// has run a while shows).
func idleMemory(ctx context.Context, spec brokerSpec, dir string, n int) (fresh, churned float64, err error) {
	b, err := startBroker(ctx, spec, dir)
	if err != nil {
		return 0, 0, err
	}
	// Killed, not stopped: a graceful close of 10,000 clients takes seconds and measures nothing.
	defer b.kill()
	time.Sleep(300 * time.Millisecond) // let start-up allocations settle before the baseline
	base, err := rssBytes(b.pid())
	if err != nil {
		return 0, 0, err
	}
	var rss [2]int64
	for round := range rss {
		conns, err := load.OpenIdle(ctx, b.addr, n, round)
		if err == nil {
			rss[round], err = settledRSS(b.pid())
		}
		conns.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", spec.Name, err)
		}
	}
	return float64(rss[0]-base) / float64(n), float64(rss[1]-base) / float64(n), nil
}

// settledRSS polls the RSS until it stops moving (goroutines and buffers settle), at most 5 s.
func settledRSS(pid int) (int64, error) {
	prev := int64(-1)
	for range 20 {
		time.Sleep(250 * time.Millisecond)
		rss, err := rssBytes(pid)
		if err != nil {
			return 0, err
		}
		if prev > 0 && abs(rss-prev) < rss/200 {
			return rss, nil
		}
		prev = rss
	}
	return prev, nil
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
