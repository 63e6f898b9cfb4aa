package limits

import "github.com/mochi-mqtt/server/v2/packets"

// Why this watch: mochi refuses a packet over -max-packet-size as it reads its fixed header
// (clients.go:456), before any hook runs, and closes the connection without a word; MQTT 5
// wants DISCONNECT 0x95 first (Mosquitto sends it). The connection layer sees the bytes mochi
// reads: it follows the packet boundaries and queues the DISCONNECT as soon as such a header
// arrives, so that it goes out before mochi closes. Packets up to four bytes over, which mochi
// lets through, are refused by limitsHook.OnPacketRead, which says 0x95 itself. The same walk
// keeps a malformed SUBSCRIBE (subscribewatch.go) and a header whose length takes more than
// four bytes from mochi, and notes the reason code of a one-byte DISCONNECT.

// disconnectTooLarge is an MQTT 5 DISCONNECT, reason code 0x95 (packet too large).
var disconnectTooLarge = []byte{0xe0, 0x01, 0x95}

// sizeWatch follows the packets in what a client sends, header by header; of an MQTT 5
// connection it also reads the body of each SUBSCRIBE and of a one-byte DISCONNECT.
type sizeWatch struct {
	limit  int     // mochi's MaximumPacketSize; 0 checks no size
	skip   int     // bytes of the current packet still to come
	header [5]byte // the fixed header read so far: type, then up to four length bytes
	n      int     // bytes in header
	done   bool    // a packet mochi refuses was seen, or the stream is malformed: stop
	v5     bool    // the connection is MQTT 5: its SUBSCRIBEs are checked
	inSub  bool    // the current packet is a SUBSCRIBE being checked
	sub    subscribeCheck
	// malformed says why the packet kept from mochi is malformed, once one was seen; tell: the
	// client is told with DISCONNECT 0x81 (as Mosquitto tells of a SUBSCRIBE; it closes without
	// a word at a length of more than four bytes).
	malformed string
	tell      bool
	// An MQTT 5 DISCONNECT of one byte: its reason code, which mochi does not read
	// (DisconnectDecode, packets.go:568, reads one only from two bytes on), so that a client
	// that leaves with 0x04 (send my will), as mosquitto_pub and mosquitto_sub do, had its will
	// dropped. limitsHook.OnPacketRead gives it to mochi.
	inReason, hasReason bool
	reason              byte
}

// disconnectReason is the reason code of the connection's one-byte DISCONNECT, if it sent one.
func (w *sizeWatch) disconnectReason() (byte, bool) { return w.reason, w.hasReason }

// read takes the next bytes read. refused: they hold the header of a packet mochi refuses for
// its size (remaining length + 1 over its maximum). keep: how many of them mochi may have, all
// unless they hold the end of a malformed SUBSCRIBE or a fifth length byte: then the bytes
// before the last one read (w.malformed says why), so that mochi never has the packet whole.
func (w *sizeWatch) read(b []byte) (refused bool, keep int) {
	for i := 0; i < len(b) && !w.done; {
		if w.skip > 0 {
			n := min(w.skip, len(b)-i)
			if w.inSub {
				w.sub.read(b[i : i+n])
			}
			if w.inReason {
				w.reason, w.hasReason, w.inReason = b[i], true, false
			}
			w.skip -= n
			i += n
			if w.skip == 0 && w.inSub && w.subscribeEnds() {
				return false, i - 1
			}
			continue
		}
		w.header[w.n] = b[i]
		w.n++
		i++
		if w.n == 1 && w.v5 && b[i-1]>>4 == packets.Publish && b[i-1]&0x06 == 0x06 {
			// QoS 3: mochi closes at this byte without a word (FixedHeader.Decode); Mosquitto
			// says 0x81. Kept from mochi, so that the client is told.
			w.malformed, w.tell, w.done = "PUBLISH: QoS 3 (MQTT-3.3.1-4)", true, true
			return false, i - 1
		}
		if w.n == 1 || w.header[w.n-1]&0x80 != 0 && w.n < len(w.header) {
			continue
		}
		if w.header[w.n-1]&0x80 != 0 {
			// A fifth length byte: malformed (MQTT 5 §1.5.5, 3.1.1 §2.2.3), but mochi reads any
			// number of them (DecodeLength, codec.go:146; 0x80s and a last 0 add nothing), and
			// the watch would lose the packet boundaries: mochi is kept from the header.
			w.malformed, w.done = "a remaining length of more than four bytes", true
			return false, i - 1
		}
		remaining := varint(w.header[1:w.n])
		w.n, w.skip = 0, remaining
		if w.limit > 0 && remaining+1 > w.limit {
			w.done = true
			return true, len(b)
		}
		if w.v5 && w.header[0]>>4 == packets.Disconnect && remaining == 1 && !w.hasReason {
			w.inReason = true
		}
		if w.v5 && w.header[0]>>4 == packets.Subscribe {
			w.inSub, w.sub = true, subscribeCheck{}
			if remaining == 0 && w.subscribeEnds() {
				return false, i - 1
			}
		}
	}
	return false, len(b)
}

// subscribeEnds ends the SUBSCRIBE being checked, and tells whether it was malformed.
func (w *sizeWatch) subscribeEnds() bool {
	w.inSub = false
	if why := w.sub.end(); why != "" {
		w.malformed, w.tell, w.done = "SUBSCRIBE: "+why, true, true
		return true
	}
	return false
}

// watch is called with each chunk mochi's reader takes from the socket; it returns how many of
// its bytes mochi may have (sizeWatch.read).
func (c *flowConn) watch(b []byte) int {
	if !c.connect.done {
		c.connect.read(b)
	}
	c.sizes.v5 = c.connect.v5
	refused, keep := c.sizes.read(b)
	if refused && c.v5.Load() {
		_, _ = c.Write(disconnectTooLarge) // queued if need be; mochi's close lets it out
	}
	return keep
}

// refuseMalformed ends the connection whose malformed packet was kept from mochi; an MQTT 5
// client whose session is established is told with DISCONNECT 0x81 first, where Mosquitto tells.
func (c *flowConn) refuseMalformed() error {
	if c.sizes.tell && c.v5.Load() {
		_, _ = c.Write(disconnectMalformed)
	}
	return violation{packets.ErrMalformedPacket, "malformed " + c.sizes.malformed}
}
