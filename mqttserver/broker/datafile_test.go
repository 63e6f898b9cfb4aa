package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/mqttserver/store"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestBinaryDamagedDataFile: a data file cut to half, emptied, or with random bytes over a few
// pages never panics the broker (bbolt panics on some damaged files) nor starts it empty without
// a word: the real binary stops with one line that names the file, says what is wrong and
// names -data-set-aside, and exits 1. With -data-set-aside it moves the file aside, says so and
// what is lost, and serves.
func TestBinaryDamagedDataFile(t *testing.T) {
	bin := mustBuild(t)
	good := makeDataFile(t, 200)
	for _, c := range []struct {
		name    string
		damage  func(t *testing.T, path string)
		problem string
	}{
		{"cut to half", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "is cut short"},
		{"emptied", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "is empty (0 bytes)"},
		{"random bytes over 4 pages of records", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r := rand.NewChaCha8([32]byte{13})
			leaves := leafPages(t, path)
			for i := range 4 {
				noise := make([]byte, pageSize)
				_, _ = r.Read(noise)
				if _, err := f.WriteAt(noise, int64(leaves[i*len(leaves)/4]*pageSize)); err != nil {
					t.Fatal(err)
				}
			}
		}, "is damaged ("},
		{"a bucket this broker never writes", func(t *testing.T, path string) {
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bbolt.Tx) error {
				_, err := tx.CreateBucket([]byte("stray"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}, `is damaged (a bucket "stray"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, store.DataFile)
			copyFile(t, good, path)
			c.damage(t, path)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-listen", "127.0.0.1:0", "-log-format", "json", "-data", dir)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1; stderr:\n%s", err, stderr.String())
			}
			want := fmt.Sprintf("mqttserver: data file %s %s", path, c.problem)
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], want) || !strings.Contains(lines[0], store.SetAsideFlag) {
				t.Fatalf("stderr = %q, want one line starting %q that names %s", stderr.String(), want, store.SetAsideFlag)
			}

			p, _ := startBinary(t, "-listen", "127.0.0.1:0", "-data", dir, store.SetAsideFlag)
			var aside string
			waitFor(t, "the moved-aside warning", func() bool {
				for _, r := range p.logs.records(t) {
					if r["level"] == "WARN" && r["file"] == path && strings.HasPrefix(fmt.Sprint(r["problem"]), c.problem) {
						aside, _ = r["moved_to"].(string)
						return r["lost"] != nil
					}
				}
				return false
			})
			if fi, err := os.Stat(aside); err != nil || !strings.HasPrefix(aside, path+".damaged-") {
				t.Errorf("damaged file moved to %q: %v", aside, err)
			} else if c.problem != "is empty (0 bytes)" && fi.Size() == 0 {
				t.Errorf("the moved file %s is empty", aside)
			}
			if !p.logs.has(t, eventlog.MsgLoaded, map[string]any{"sessions": 0, "retained": 0}) {
				t.Error("no loaded line with 0 sessions and 0 retained messages")
			}
		})
	}
	t.Run("intact", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, good, filepath.Join(dir, store.DataFile))
		p, _ := startBinary(t, "-listen", "127.0.0.1:0", "-data", dir, store.SetAsideFlag)
		if !p.logs.has(t, eventlog.MsgLoaded, map[string]any{"sessions": 1, "retained": 200}) {
			t.Error("the intact file did not load its session and 200 retained messages")
		}
	})
}

// makeDataFile writes a data file with retained messages and one stored session, and returns
// its path.
func makeDataFile(t *testing.T, retained int) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := startBroker(t, Config{DataDir: dir})
	keep := rawConnect(t, b.Addr(), "keep", false)
	rawExchange(t, keep, rawmqtt.Subscribe(1, "k/#", 1), 0x90, 1)
	pub := rawConnect(t, b.Addr(), "pub", true)
	for i := range retained {
		pk := rawmqtt.Publish(fmt.Sprintf("r/%d", i), 1, uint16(i+1), []byte(strings.Repeat("x", 500)))
		pk[0] |= 1 // RETAIN
		rawExchange(t, pub, pk, 0x40, i+1)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, store.DataFile)
}

// pageSize is bbolt's page size on this machine, that of the files the tests make.
var pageSize = os.Getpagesize()

// leafPages lists the pages of a data file that hold records.
func leafPages(t *testing.T, path string) []int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var leaves []int
	err = db.View(func(tx *bbolt.Tx) error {
		for id := 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			if info.Type == "leaf" {
				leaves = append(leaves, id)
			}
		}
	})
	if err != nil || len(leaves) < 4 {
		t.Fatalf("%d leaf pages in %s: %v", len(leaves), path, err)
	}
	return leaves
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBinaryDamagedMetaPage: bbolt keeps two meta pages and, when the newer fails its checksum,
// silently uses the older one. Random bytes over the newest meta page of a file holding a queued
// QoS 1 message, whose PUBACK the publisher saw, made the broker start with queued=0. Either
// meta page damaged is damage like any other: the binary refuses the file (which page held the
// newest state cannot be told once one is damaged), and -data-set-aside sets it aside. A fresh
// file and a normally closed one (both meta pages valid) still open.
func TestBinaryDamagedMetaPage(t *testing.T) {
	bin := mustBuild(t)
	good := makeQueuedFile(t)
	newest := 0
	if metaTxid(t, good, 1) > metaTxid(t, good, 0) {
		newest = 1
	}
	for _, c := range []struct {
		name       string
		page       int
		start, end int // the bytes of the page made random
	}{
		// Over the meta fields only: bbolt went back to the older page, silently.
		{"newest meta page's fields", newest, 16, 80},
		// Over the page header too: bbolt's Check panicked on a goroutine of its own.
		{"newest meta page", newest, 0, pageSize},
		{"older meta page's fields", 1 - newest, 16, 80},
		{"older meta page", 1 - newest, 0, pageSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, store.DataFile)
			copyFile(t, good, path)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			noise := make([]byte, c.end-c.start)
			_, _ = rand.NewChaCha8([32]byte{byte(c.page)}).Read(noise)
			_, err = f.WriteAt(noise, int64(c.page*pageSize+c.start))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-listen", "127.0.0.1:0", "-log-format", "json", "-data", dir)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err = cmd.Run()
			var exit *exec.ExitError
			want := fmt.Sprintf("mqttserver: data file %s is damaged (meta page %d", path, c.page)
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.HasPrefix(stderr.String(), want) ||
				strings.Count(stderr.String(), "\n") != 1 {
				t.Fatalf("exit: %v, stderr:\n%s\nwant status 1 and one line starting %q", err, stderr.String(), want)
			}

			p, _ := startBinary(t, "-listen", "127.0.0.1:0", "-data", dir, store.SetAsideFlag)
			waitFor(t, "the moved-aside warning", func() bool {
				return p.logs.has(t, "data file damaged: moved aside, starting with no retained messages or stored sessions",
					map[string]any{"file": path})
			})
		})
	}
	t.Run("normally closed", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, good, filepath.Join(dir, store.DataFile))
		p, _ := startBinary(t, "-listen", "127.0.0.1:0", "-data", dir)
		if !p.logs.has(t, eventlog.MsgLoaded, map[string]any{"sessions": 1, "queued": 1}) {
			t.Error("the file did not load its session and its queued message")
		}
	})
	t.Run("fresh", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bbolt.Open(filepath.Join(dir, store.DataFile), 0o600, nil) // meta pages only
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		p, _ := startBinary(t, "-listen", "127.0.0.1:0", "-data", dir)
		if !p.logs.has(t, eventlog.MsgLoaded, map[string]any{"sessions": 0, "queued": 0}) {
			t.Error("the fresh file did not load")
		}
	})
}

// makeQueuedFile writes a data file holding one stored session with one queued QoS 1 message,
// acknowledged to its publisher, and returns its path.
func makeQueuedFile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := startBroker(t, Config{DataDir: dir})
	keep := rawConnect(t, b.Addr(), "keep", false)
	rawExchange(t, keep, rawmqtt.Subscribe(1, "q/#", 1), 0x90, 1)
	if err := keep.Close(); err != nil {
		t.Fatal(err)
	}
	pub := rawConnect(t, b.Addr(), "pub", true)
	rawExchange(t, pub, rawmqtt.Publish("q/a", 1, 1, []byte("acknowledged")), 0x40, 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, store.DataFile)
}

// metaTxid is the transaction id in meta page n of a bbolt file: after the 16-byte page header,
// magic, version, page size and flags (4 bytes each), root bucket (16), free list and high
// water mark (8 each), then the transaction id (8).
func metaTxid(t *testing.T, path string, n int) uint64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return binary.NativeEndian.Uint64(data[n*pageSize+16+48:])
}
