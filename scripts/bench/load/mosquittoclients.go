package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// Load written by clients nobody here wrote: mosquitto_pub -l (one PUBLISH per line of its
// standard input, as it reads them) feeding mosquitto_sub -C (which prints each payload as a line
// and exits after a count). Our own client batches its writes and may hide a pattern of reads and
// writes these tools expose.

// MosquittoClients reports whether mosquitto_pub and mosquitto_sub are on the PATH; an error
// names the one missing.
func MosquittoClients() error {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (install mosquitto-clients): %w", tool, err)
		}
	}
	return nil
}

// RunMosquittoClients sends w.Count messages of w.Size bytes at w.QoS through the broker at
// addr, from one mosquitto_pub -l to one mosquitto_sub, and times them from the first line
// mosquitto_sub prints to the last (the tools' start-up is not counted). Messages a broker drops
// (QoS 0 to a subscriber that falls behind) are counted as lost: the run ends when
// mosquitto_sub has printed them all or has printed nothing for a second after mosquitto_pub
// ended.
func RunMosquittoClients(ctx context.Context, addr string, w Workload, runID string) (Result, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	topic := "bench/" + runID
	// mosquitto_sub says nothing when it has subscribed; a retained message on a second topic of
	// the same SUBSCRIBE does: brokers send retained messages once the subscriptions hold.
	ready := topic + "/ready"
	if err := publishRetained(ctx, addr, runID+"-ready", ready, []byte("ready")); err != nil {
		return Result{}, fmt.Errorf("retained ready message: %w", err)
	}
	defer publishRetained(context.Background(), addr, runID+"-clear", ready, nil)

	q := strconv.Itoa(int(w.QoS))
	sub := exec.CommandContext(ctx, "mosquitto_sub", "-h", host, "-p", port, "-q", q,
		"-t", topic, "-t", ready, "-C", strconv.Itoa(w.Count+1))
	var subErr bytes.Buffer
	sub.Stderr = &subErr
	out, err := sub.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	if err := sub.Start(); err != nil {
		return Result{}, fmt.Errorf("start mosquitto_sub: %w", err)
	}
	lc := &lineCounter{subscribed: make(chan struct{})}
	subDone := make(chan error, 1)
	go func() {
		lc.read(out)
		subDone <- sub.Wait() // after the reads, as Wait closes the pipe
	}()
	subRunning := true
	defer func() {
		if subRunning {
			_ = sub.Process.Kill()
			<-subDone
		}
	}()
	select {
	case <-lc.subscribed:
	case err := <-subDone:
		subRunning = false
		return Result{}, fmt.Errorf("mosquitto_sub ended before it subscribed: %v %s", err, bytes.TrimSpace(subErr.Bytes()))
	case <-ctx.Done():
		return Result{}, fmt.Errorf("mosquitto_sub did not subscribe: %w", ctx.Err())
	}

	pub := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-q", q, "-t", topic, "-l")
	var pubErr bytes.Buffer
	pub.Stderr = &pubErr
	in, err := pub.StdinPipe()
	if err != nil {
		return Result{}, err
	}
	if err := pub.Start(); err != nil {
		return Result{}, fmt.Errorf("start mosquitto_pub: %w", err)
	}
	line := append(bytes.Repeat([]byte{'x'}, w.Size), '\n')
	bw := bufio.NewWriterSize(in, 64<<10)
	for range w.Count {
		if _, err := bw.Write(line); err != nil {
			break // mosquitto_pub ended: its error says why
		}
	}
	_ = bw.Flush()
	in.Close()
	if err := pub.Wait(); err != nil {
		return Result{}, fmt.Errorf("mosquitto_pub: %w %s", err, bytes.TrimSpace(pubErr.Bytes()))
	}

	// mosquitto_sub exits once it has printed the count; a broker that dropped messages leaves
	// it waiting: it is stopped when a second passes with no line.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for last := int64(-1); subRunning; {
		select {
		case err := <-subDone:
			subRunning = false
			if err != nil {
				return Result{}, fmt.Errorf("mosquitto_sub: %w %s", err, bytes.TrimSpace(subErr.Bytes()))
			}
		case <-tick.C:
			n := lc.n.Load()
			if n == last {
				_ = sub.Process.Kill()
				<-subDone
				subRunning = false
			}
			last = n
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	return Result{
		Sent: int64(w.Count), Expected: int64(w.Count), Delivered: lc.n.Load(),
		Elapsed: time.Duration(lc.last.Load() - lc.first.Load()),
	}, nil
}

// lineCounter counts the payload lines mosquitto_sub prints after the ready message.
type lineCounter struct {
	n           atomic.Int64  // payload lines
	first, last atomic.Int64  // now() at the first and at the latest payload line
	subscribed  chan struct{} // closed at the ready line
}

func (lc *lineCounter) read(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	ready, partial := false, false
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			partial = true // a line longer than the buffer: counted at its end
			continue
		}
		if err != nil {
			return
		}
		switch {
		case !ready && !partial && string(b) == "ready\n":
			ready = true
			close(lc.subscribed)
		case ready:
			t := now()
			if lc.n.Add(1) == 1 {
				lc.first.Store(t)
			}
			lc.last.Store(t)
		}
		partial = false
	}
}

// publishRetained publishes a retained message at QoS 1 (nil payload: clears the topic's) and
// waits for the broker's PUBACK, so it is stored before this returns.
func publishRetained(ctx context.Context, addr, clientID, topic string, payload []byte) error {
	c, err := dialMQTT(ctx, addr, nil, clientID, 4<<10)
	if err != nil {
		return err
	}
	defer c.close()
	pk := rawmqtt.Publish(topic, 1, 1, payload)
	pk[0] |= 0x01 // retain
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	c.w.Write(pk)
	if err := c.w.Flush(); err != nil {
		return err
	}
	for {
		fh, _, err := c.in.Next()
		if err != nil {
			return fmt.Errorf("read PUBACK: %w", err)
		}
		if fh.Type == packets.Puback {
			return nil
		}
	}
}
