package limits

import "github.com/mochi-mqtt/server/v2/packets"

// Why this check: mochi v2.7.9 reads an MQTT 5 SUBSCRIBE's options byte without looking whether
// it is there (SubscribeDecode, packets.go:959). A SUBSCRIBE whose last filter has no options
// byte (8 bytes, or 7 with an empty filter) panics in the connection's goroutine, and the whole
// broker exits (mochi-mqtt/server#501). mochi also keeps only the option bits it knows, so a
// SUBSCRIBE with reserved bits set (malformed, MQTT-3.8.3-5) or Retain Handling 3 (a protocol
// error) is granted. The connection layer reads each SUBSCRIBE of an MQTT 5 connection as it
// arrives (sizeWatch); a malformed one never reaches mochi whole, and the connection ends with
// DISCONNECT 0x81, as Mosquitto 2.0.11 answers all of these.

// subscribeStep is what the next bytes of a SUBSCRIBE's body are.
type subscribeStep uint8

const (
	subPacketID    subscribeStep = iota // the packet identifier (2 bytes)
	subPropsLength                      // the properties' length (varint)
	subProps                            // the properties, passed over
	subFilterLen                        // a topic filter's length (2 bytes)
	subFilter                           // a topic filter, passed over
	subOptions                          // the filter's subscription options (1 byte)
)

// subscribeCheck reads the body of one MQTT 5 SUBSCRIBE, chunk by chunk, without keeping it.
type subscribeCheck struct {
	step  subscribeStep
	field [4]byte // the bytes of the current field
	n     int     // bytes in field
	skip  int     // bytes of properties or of a filter still to pass over
	why   string  // the first fault found, or ""
}

// read takes the next bytes of the body (never past its end).
func (s *subscribeCheck) read(b []byte) {
	for len(b) > 0 {
		if s.skip > 0 {
			n := min(s.skip, len(b))
			s.skip -= n
			b = b[n:]
			if s.skip == 0 {
				s.afterSkip()
			}
			continue
		}
		c := b[0]
		b = b[1:]
		switch s.step {
		case subPacketID, subFilterLen:
			s.field[s.n] = c
			if s.n++; s.n == 2 {
				s.n = 0
				if s.step == subPacketID {
					s.step = subPropsLength
				} else {
					s.skip, s.step = int(s.field[0])<<8|int(s.field[1]), subFilter
					if s.skip == 0 {
						s.afterSkip()
					}
				}
			}
		case subPropsLength:
			s.field[s.n] = c
			s.n++
			if c&0x80 != 0 {
				if s.n == len(s.field) {
					s.fault("properties length of more than four bytes")
					s.n = 0
				}
				continue
			}
			s.skip, s.n, s.step = varint(s.field[:s.n]), 0, subProps
			if s.skip == 0 {
				s.afterSkip()
			}
		case subOptions:
			switch {
			case c&0xc0 != 0:
				s.fault("reserved bits set in the subscription options (MQTT-3.8.3-5)")
			case c>>4&3 == 3:
				s.fault("retain handling 3 (MQTT 5 §3.8.3.1)")
			case c&3 == 3:
				s.fault("QoS 3 in the subscription options (MQTT 5 §3.8.3.1)")
			}
			s.step = subFilterLen
		case subProps, subFilter: // a length of 0 moved on already
		}
	}
}

// afterSkip moves past properties or a filter passed over.
func (s *subscribeCheck) afterSkip() {
	if s.step == subProps {
		s.step = subFilterLen
	} else {
		s.step = subOptions
	}
}

func (s *subscribeCheck) fault(why string) {
	if s.why == "" {
		s.why = why
	}
}

// end is called at the end of the body: the fault the SUBSCRIBE has, or "". A body that stops
// inside a field (a filter without its options byte: the panic) is malformed; one with no
// filter at all is mochi's to refuse (0x82, as the specification says).
func (s *subscribeCheck) end() string {
	if s.why == "" && (s.step != subFilterLen || s.n != 0 || s.skip != 0) {
		s.why = "the packet ends inside a field (mochi-mqtt/server#501)"
	}
	return s.why
}

// disconnectMalformed is an MQTT 5 DISCONNECT, reason code 0x81 (malformed packet).
var disconnectMalformed = []byte{0xe0, 0x01, byte(packets.ErrMalformedPacket.Code)}
