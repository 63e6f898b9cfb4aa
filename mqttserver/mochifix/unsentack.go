package mochifix

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

func (h *Hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		h.onAck(cl, pk) // receivemax.go
		return
	}
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0 {
		if v, ok := h.acks.Load(cl); ok {
			if id, acked := v.(*ackSlot).take(); acked && id == pk.PacketID && err != nil {
				h.ackNotSent(cl, pk)
			}
		}
	}
}

// ackSlot holds the packet id (+1; 0: none) of the PUBACK or PUBREC mochi recorded for the
// PUBLISH a client's connection is processing.
type ackSlot struct{ id atomic.Int32 }

func (s *ackSlot) take() (id uint16, ok bool) {
	v := s.id.Swap(0)
	return uint16(v - 1), v != 0
}

// noteAck records that mochi recorded an acknowledgement of the client's PUBLISH id: it
// calls OnQosPublish with it right after, before it writes it.
func (h *Hook) noteAck(cl *mqtt.Client, id uint16) {
	v, ok := h.acks.Load(cl)
	if !ok {
		v, _ = h.acks.LoadOrStore(cl, new(ackSlot))
	}
	v.(*ackSlot).id.Store(int32(id) + 1)
}

// ackNotSent handles a PUBLISH whose PUBACK or PUBREC mochi recorded but could not send (the
// connection broke at that instant). mochi delivers a message only after that write, and
// stopped; but it keeps the record, and sends it at the client's next connection (or a
// take-over copies it first). The client, told its message arrived, does not send it again:
// the message is delivered now, so that the record is true. With -data it was delivered
// before the acknowledgement (package store).
func (h *Hook) ackNotSent(cl *mqtt.Client, pk packets.Packet) {
	if !h.DeliveredFirst {
		if pk.Properties.TopicAliasFlag && pk.Properties.TopicAlias > 0 {
			pk.TopicName = cl.State.TopicAliases.Inbound.Set(pk.Properties.TopicAlias, pk.TopicName)
			pk.Properties.TopicAliasFlag, pk.Properties.TopicAlias = false, 0
		}
		if err := h.server.InjectPacket(InlinePublisher(h.server, cl), pk); err != nil {
			h.log.Error("message whose acknowledgement could not be sent not delivered", "client", cl.ID, "error", err)
		}
	}
}
