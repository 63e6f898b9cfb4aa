// Package mochifix holds the mends of mochi-mqtt v2.7.9's flaws that live in one hook (Hook),
// and the facts about mochi's clients that the mends and the other parts share (KeepsSession,
// InlinePublisher). It knows mochi and nothing of the rest of the broker: the assembly tells it
// how to persist a message it queues (Persist) and whether the store delivers first.
package mochifix
