package limits

// Why this watch: mochi refuses a packet over -max-packet-size as it reads its fixed header
// (clients.go:456), before any hook runs, and closes the connection without a word; MQTT 5
// wants DISCONNECT 0x95 first (Mosquitto sends it). The connection layer sees the bytes mochi
// reads: it follows the packet boundaries and queues the DISCONNECT as soon as such a header
// arrives, so that it goes out before mochi closes. Packets up to four bytes over, which mochi
// lets through, are refused by limitsHook.OnPacketRead, which says 0x95 itself.

// disconnectTooLarge is an MQTT 5 DISCONNECT, reason code 0x95 (packet too large).
var disconnectTooLarge = []byte{0xe0, 0x01, 0x95}

// sizeWatch follows the packets in what a client sends, header by header.
type sizeWatch struct {
	limit  int     // mochi's MaximumPacketSize; 0 watches nothing
	skip   int     // bytes of the current packet still to come
	header [5]byte // the fixed header read so far: type, then up to four length bytes
	n      int     // bytes in header
	done   bool    // a packet mochi refuses was seen, or the stream is malformed: stop
}

// refused takes the next bytes read and reports whether they hold the header of a packet
// mochi refuses for its size (remaining length + 1 over its maximum).
func (w *sizeWatch) refused(b []byte) bool {
	for len(b) > 0 && !w.done && w.limit > 0 {
		if w.skip > 0 {
			n := min(w.skip, len(b))
			w.skip -= n
			b = b[n:]
			continue
		}
		w.header[w.n] = b[0]
		w.n++
		b = b[1:]
		if w.n == 1 || w.header[w.n-1]&0x80 != 0 && w.n < len(w.header) {
			continue
		}
		remaining, shift := 0, 0
		for _, c := range w.header[1:w.n] {
			remaining |= int(c&0x7f) << shift
			shift += 7
		}
		if w.header[w.n-1]&0x80 != 0 { // five length bytes: mochi ends the connection
			w.done = true
			return false
		}
		w.n, w.skip = 0, remaining
		if remaining+1 > w.limit {
			w.done = true
			return true
		}
	}
	return false
}

// watch is called with each chunk mochi's reader takes from the socket.
func (c *flowConn) watch(b []byte) {
	if !c.connect.done {
		c.connect.read(b)
	}
	if c.sizes.refused(b) && c.v5.Load() {
		_, _ = c.Write(disconnectTooLarge) // queued if need be; mochi's close lets it out
	}
}
