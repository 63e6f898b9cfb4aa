package tests

import (
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// conformanceScenarios are run by TestConformance against mqttserver and Mosquitto. Clients are
// named by letter; topics are given without the per-scenario prefix the runner adds. Every run
// ends with a sentinel to each connected client, so "nothing else arrives" is checked without
// sleeping.
var conformanceScenarios = []confScenario{
	// QoS 0, 1 and 2, publisher to subscriber and back
	{name: "qos 0 1 2, 3.1.1", steps: []confStep{
		connect("s", 4, true), sub("s", 1, "t/#", 2),
		connect("p", 4, true),
		pub("p", "t/q0", 0, 0, "zero"), pub("p", "t/q1", 1, 1, "one"), pub("p", "t/q2", 2, 2, "two"),
	}, want: map[string][]string{"s": {"t/q0=zero", "t/q1=one", "t/q2=two"}}},
	{name: "qos 0 1 2, 5", steps: []confStep{
		connect("s", 5, true), sub("s", 1, "t/#", 2),
		connect("p", 5, true),
		pub("p", "t/q0", 0, 0, "zero"), pub("p", "t/q1", 1, 1, "one"), pub("p", "t/q2", 2, 2, "two"),
	}, want: map[string][]string{"s": {"t/q0=zero", "t/q1=one", "t/q2=two"}}},
	{name: "qos is the lower of publish and subscription", steps: []confStep{
		connect("s0", 4, true), sub("s0", 1, "t/+", 0),
		connect("s1", 4, true), sub("s1", 1, "t/+", 1),
		connect("s2", 5, true), sub("s2", 1, "t/+", 2),
		connect("p", 4, true),
		pub("p", "t/a", 2, 7, "from 2"), pub("p", "t/a", 1, 8, "from 1"), pub("p", "t/a", 0, 0, "from 0"),
	}},
	{name: "order within a topic and qos", steps: []confStep{
		connect("s", 4, true), sub("s", 1, "t/#", 2),
		connect("p", 4, true),
		pub("p", "t/a", 1, 1, "a1"), pub("p", "t/b", 2, 2, "b1"), pub("p", "t/a", 1, 3, "a2"),
		pub("p", "t/b", 2, 4, "b2"), pub("p", "t/a", 1, 5, "a3"), pub("p", "t/b", 2, 6, "b3"),
		pub("p", "t/a", 0, 0, "a4"), pub("p", "t/a", 0, 0, "a5"),
	}},
	{name: "a client receives its own messages, 3.1.1", steps: []confStep{
		connect("c", 4, true), sub("c", 1, "t/#", 2),
		pub("c", "t/a", 1, 2, "mine 1"), pub("c", "t/a", 2, 3, "mine 2"),
	}},
	{name: "no local, 5", steps: []confStep{
		connect("c", 5, true), subWith("c", 1, "t/#", packets.Subscription{Qos: 2, NoLocal: true}),
		connect("o", 5, true),
		pub("c", "t/a", 1, 2, "mine"), pub("o", "t/a", 1, 2, "other"),
	}},
	{name: "unsubscribe stops delivery", steps: []confStep{
		connect("s", 5, true), sub("s", 1, "t/a", 1), sub("s", 2, "t/b", 1),
		connect("p", 4, true),
		pub("p", "t/a", 1, 1, "before"), unsub("s", 3, "t/a"), unsub("s", 4, "t/nothing"),
		pub("p", "t/a", 1, 2, "after"), pub("p", "t/b", 1, 3, "still"),
	}},

	// redelivery
	{name: "unacknowledged messages come again on reconnect, 3.1.1", compareDup: true, steps: []confStep{
		connect("s", 4, false), sub("s", 1, "t/#", 2), withhold("s"),
		connect("p", 4, true),
		pub("p", "t/a", 1, 1, "one"), pub("p", "t/b", 2, 2, "two"),
		settle(), drop("s"), connect("s", 4, false),
	}, want: map[string][]string{"s": {"t/a=one", "t/b=two"}}},
	{name: "unacknowledged messages come again on reconnect, 5", compareDup: true, steps: []confStep{
		connect("s", 5, false), sub("s", 1, "t/#", 2), withhold("s"),
		connect("p", 5, true),
		pub("p", "t/a", 1, 1, "one"), pub("p", "t/b", 2, 2, "two"),
		settle(), drop("s"), connect("s", 5, false),
	}, want: map[string][]string{"s": {"t/a=one", "t/b=two"}}},
	{name: "unacknowledged messages come again after a clean disconnect", steps: []confStep{
		connect("s", 4, false), sub("s", 1, "t/#", 1), withhold("s"),
		connect("p", 4, true),
		pub("p", "t/a", 1, 1, "one"), pub("p", "t/a", 1, 2, "two"), pub("p", "t/a", 1, 3, "three"),
		settle(), disconnect("s"), connect("s", 4, false),
	}, want: map[string][]string{"s": {"t/a=one", "t/a=two", "t/a=three"}}},
	{name: "messages queued while offline", steps: []confStep{
		connect("s", 4, false), sub("s", 1, "t/#", 2), disconnect("s"),
		connect("p", 4, true),
		pub("p", "t/a", 1, 1, "one"), pub("p", "t/a", 2, 2, "two"), pub("p", "t/a", 1, 3, "three"),
		connect("s", 4, false),
	}, want: map[string][]string{"s": {"t/a=one", "t/a=two", "t/a=three"}}},
	{name: "first delivery of a queued message is not DUP", compareDup: true, steps: []confStep{
		connect("s", 5, false), sub("s", 1, "t/#", 2), disconnect("s"),
		connect("p", 5, true), pub("p", "t/a", 1, 1, "one"), pub("p", "t/a", 2, 2, "two"),
		connect("s", 5, false),
	}},
	{name: "clean session ends the old one", steps: []confStep{
		connect("s", 4, false), sub("s", 1, "t/#", 1), disconnect("s"),
		connect("p", 4, true), pub("p", "t/a", 1, 1, "lost with the session"),
		connect("s", 4, true), pub("p", "t/a", 1, 2, "no subscription"),
	}},

	// the loss of issue 20: the client's QoS 2 PUBLISH takes the id of the broker's QoS 1 message to it
	{name: "issue 20 loss 1, ids clash on both brokers, 3.1.1", compareDup: true, steps: []confStep{
		connect("c", 4, false), sub("c", 1, "TopicA/#", 2), withhold("c"),
		pub("c", "TopicA/B", 1, 2, "B"), pubTheirs("c", "TopicA/C", 2, 1, "C"),
		settle(), drop("c"), connect("c", 4, false),
	}, want: map[string][]string{"c": {"TopicA/B=B", "TopicA/C=C"}}},
	{name: "issue 20 loss 1, ids clash on both brokers, 5", compareDup: true, steps: []confStep{
		connect("c", 5, false), sub("c", 1, "TopicA/#", 2), withhold("c"),
		pub("c", "TopicA/B", 1, 2, "B"), pubTheirs("c", "TopicA/C", 2, 1, "C"),
		settle(), drop("c"), connect("c", 5, false),
	}, want: map[string][]string{"c": {"TopicA/B=B", "TopicA/C=C"}}},
	{name: "issue 20 loss 1, client counts up, 3.1.1", steps: []confStep{
		// the runner's SUBSCRIBE to the sentinel topic is id 1; ours gives the message the id the client takes next
		connect("c", 4, false), sub("c", 2, "TopicA/#", 2), withhold("c"),
		pub("c", "TopicA/B", 1, 3, "B"), pub("c", "TopicA/C", 2, 4, "C"),
		settle(), drop("c"), connect("c", 4, false),
	}, want: map[string][]string{"c": {"TopicA/B=B", "TopicA/C=C"}}},
	{name: "issue 20 loss 1, client counts up, 5", steps: []confStep{
		// the runner's SUBSCRIBE to the sentinel topic is id 1; ours gives the message the id the client takes next
		connect("c", 5, false), sub("c", 2, "TopicA/#", 2), withhold("c"),
		pub("c", "TopicA/B", 1, 3, "B"), pub("c", "TopicA/C", 2, 4, "C"),
		settle(), drop("c"), connect("c", 5, false),
	}, want: map[string][]string{"c": {"TopicA/B=B", "TopicA/C=C"}}},

	// packet ids the client chooses, colliding with the broker's
	{name: "client qos 1 publish with the broker's id", steps: []confStep{
		connect("c", 4, false), sub("c", 1, "t/#", 2), withhold("c"),
		connect("p", 4, true), pub("p", "t/in", 1, 1, "in 1"), pub("p", "t/in", 2, 2, "in 2"),
		pubTheirs("c", "t/out", 1, 1, "out 1"), pubTheirs("c", "t/out", 1, 2, "out 2"),
		settle(), drop("c"), connect("c", 4, false),
	}, want: map[string][]string{"c": {"t/in=in 1", "t/in=in 2", "t/out=out 1", "t/out=out 2"}}},
	{name: "subscribe and unsubscribe with the broker's id", steps: []confStep{
		connect("c", 4, false), sub("c", 1, "t/a", 1), withhold("c"),
		connect("p", 4, true), pub("p", "t/a", 1, 1, "held"),
		confStep{op: opSubscribe, client: "c", filter: "t/b", theirs: 1, subOpts: packets.Subscription{Qos: 1}},
		pub("p", "t/b", 1, 2, "on b"),
		confStep{op: opUnsubscribe, client: "c", filter: "t/b", theirs: 1},
		pub("p", "t/b", 1, 3, "after unsubscribe"),
		settle(), ackAll("c"),
	}, want: map[string][]string{"c": {"t/a=held", "t/b=on b"}}},
	{name: "subscribe with the id of a queued message on resume, 5", steps: []confStep{
		connect("c", 5, false), sub("c", 1, "t/a", 1), disconnect("c"),
		connect("p", 5, true), pub("p", "t/a", 1, 1, "q1"), pub("p", "t/a", 1, 2, "q2"),
		connectWith("c", confConnect{version: 5, expiry: 3600, withhold: true}),
		sub("c", 1, "t/b", 1), sub("c", 2, "t/c", 1), pub("p", "t/b", 1, 3, "on b"),
		settle(), ackAll("c"),
	}, want: map[string][]string{"c": {"t/a=q1", "t/a=q2", "t/b=on b"}}},
	{name: "broker's ids meet the client's held qos 2 ids", steps: []confStep{
		connect("c", 4, false), sub("c", 1, "t/in", 2),
		pubHeld("c", "t/out", 1, "held 1"), pubHeld("c", "t/out", 2, "held 2"), pubHeld("c", "t/out", 3, "held 3"),
		connect("p", 4, true), pub("p", "t/in", 1, 1, "in 1"), pub("p", "t/in", 2, 2, "in 2"),
		release("c", 1), release("c", 2), release("c", 3),
		connect("s", 4, true), sub("s", 1, "t/#", 2),
		pub("p", "t/out", 1, 3, "after"),
	}, want: map[string][]string{"c": {"t/in=in 1", "t/in=in 2"}}},
	{name: "packet ids near 65535", steps: []confStep{
		connect("c", 4, false), sub("c", 65535, "t/#", 2),
		pub("c", "t/a", 1, 65535, "65535 q1"), pub("c", "t/a", 2, 65534, "65534 q2"),
		pub("c", "t/a", 2, 65535, "65535 q2"), pub("c", "t/a", 1, 65535, "65535 q1 again"),
		// Its own copies before it withholds acks: mochi may send a client its copy after the
		// PUBACK for it (the copy from the client's write goroutine), Mosquitto before.
		await("c", "t/a", 4), withhold("c"), pub("c", "t/b", 1, 65533, "held"), pubTheirs("c", "t/b", 1, 5, "clash near the top"),
		settle(), drop("c"), connect("c", 4, false),
		unsub("c", 65535, "t/#"), pub("c", "t/a", 1, 1, "unsubscribed"),
	}, want: map[string][]string{"c": {"t/a=65535 q1", "t/a=65534 q2", "t/a=65535 q2", "t/a=65535 q1 again", "t/b=held", "t/b=clash near the top"}}},

	// retained messages
	// A subscriber awaits its retained messages before the next publish: mochi sends them after
	// the SUBACK, from the subscriber's goroutine (see retainedAfterSuback).
	{name: "retained set, replace, clear", steps: []confStep{
		connect("p", 4, true), pubRetained("p", "r/a", 1, 1, "first"),
		connect("s1", 4, true), sub("s1", 1, "r/#", 2), await("s1", "r/a", 1),
		pubRetained("p", "r/a", 2, 2, "second"),
		connect("s2", 4, true), sub("s2", 1, "r/#", 2), await("s2", "r/a", 1),
		pubRetained("p", "r/a", 0, 0, ""),
		connect("s3", 4, true), sub("s3", 1, "r/#", 2),
		pub("p", "r/a", 1, 3, "not retained"),
		connect("s4", 4, true), sub("s4", 1, "r/#", 2),
	}, want: map[string][]string{"s1": {"r/a=first", "r/a=second"}, "s2": {"r/a=second"}}},
	{name: "retained message at the subscription's qos", steps: []confStep{
		connect("p", 4, true), pubRetained("p", "r/q2", 2, 1, "two"), pubRetained("p", "r/q1", 1, 2, "one"),
		connect("s0", 4, true), sub("s0", 1, "r/+", 0),
		connect("s1", 4, true), sub("s1", 1, "r/+", 1),
		connect("s2", 5, true), sub("s2", 1, "r/+", 2),
	}},
	{name: "retain handling and retain as published, 5", allow: []string{"overlapping copies"}, steps: []confStep{
		connect("p", 5, true), pubRetained("p", "r/a", 1, 1, "kept"),
		connect("s", 5, true),
		subWith("s", 1, "r/a", packets.Subscription{Qos: 1, RetainHandling: 2}),
		subWith("s", 2, "r/+", packets.Subscription{Qos: 1, RetainHandling: 1, RetainAsPublished: true}),
		subWith("s", 3, "r/+", packets.Subscription{Qos: 1, RetainHandling: 1}),
		subWith("s", 4, "r/#", packets.Subscription{Qos: 1}), await("s", "r/a", 2), // from subscriptions 2 and 4
		pubRetained("p", "r/a", 1, 2, "new"),
	}},
	{name: "retained message survives a restart", restart: true, steps: []confStep{
		connect("p", 4, true), pubRetained("p", "r/a", 1, 1, "kept"), pubRetained("p", "r/b", 2, 2, "cleared"),
		pubRetained("p", "r/b", 1, 3, ""), disconnect("p"),
		restart(),
		connect("s", 4, true), sub("s", 1, "r/#", 2),
	}, want: map[string][]string{"s": {"r/a=kept"}}},

	// wills
	{name: "will on a dropped connection", steps: []confStep{
		connect("w", 4, true), sub("w", 1, "w/#", 1),
		connectWith("l", confConnect{version: 4, clean: true, will: "w/l", willPayload: "gone", willQoS: 1}),
		drop("l"), await("w", "w/l", 1),
	}, want: map[string][]string{"w": {"w/l=gone"}}},
	{name: "retained will, 5", steps: []confStep{
		connectWith("l", confConnect{version: 5, clean: true, will: "w/l", willPayload: "gone", willQoS: 2, willRetain: true}),
		connect("w", 5, true), sub("w", 1, "w/#", 2), settle(), // as in "retained will, 3.1.1"
		drop("l"), await("w", "w/l", 1),
		connect("late", 5, true), sub("late", 1, "w/#", 2), await("late", "w/l", 1),
	}, want: map[string][]string{"w": {"w/l=gone"}, "late": {"w/l=gone"}}},
	{name: "retained will, 3.1.1", steps: []confStep{
		connectWith("l", confConnect{version: 4, clean: true, will: "w/l", willPayload: "gone", willQoS: 1, willRetain: true}),
		// settle: mochi looks the retained messages up after the SUBACK; the will must not be
		// retained before that, or w gets it twice (an allowed difference, docs/reliability.md).
		connect("w", 4, true), sub("w", 1, "w/#", 2), settle(),
		drop("l"), await("w", "w/l", 1),
		connect("late", 4, true), sub("late", 1, "w/#", 2), await("late", "w/l", 1),
	}, want: map[string][]string{"w": {"w/l=gone"}, "late": {"w/l=gone"}}},
	{name: "will withdrawn by a clean disconnect", steps: []confStep{
		connect("w", 4, true), sub("w", 1, "w/#", 1),
		connectWith("l", confConnect{version: 4, clean: true, will: "w/l", willPayload: "must not come", willQoS: 1}),
		disconnect("l"),
		connectWith("l5", confConnect{version: 5, clean: true, will: "w/l5", willPayload: "must not come", willQoS: 1}),
		disconnect("l5"),
	}},
	{name: "will sent on DISCONNECT 0x04, 5", steps: []confStep{
		connect("w", 5, true), sub("w", 1, "w/#", 1),
		connectWith("l", confConnect{version: 5, clean: true, will: "w/l", willPayload: "asked for", willQoS: 1}),
		disconnectWithWill("l"), await("w", "w/l", 1),
	}, want: map[string][]string{"w": {"w/l=asked for"}}},
	{name: "delayed will, 5", steps: []confStep{
		connect("w", 5, true), sub("w", 1, "w/#", 1),
		connectWith("l", confConnect{version: 5, expiry: 60, will: "w/l", willPayload: "late", willQoS: 1, willDelay: 1}),
		drop("l"), await("w", "w/l", 1),
	}, want: map[string][]string{"w": {"w/l=late"}}},
	{name: "delayed will withdrawn by reconnecting in time, 5", steps: []confStep{
		connect("w", 5, true), sub("w", 1, "w/#", 1),
		connectWith("l", confConnect{version: 5, expiry: 60, will: "w/first", willPayload: "must not come", willQoS: 1, willDelay: 2}),
		drop("l"),
		// the second will, with the same delay, is the sentinel: the first would have come before it
		connectWith("l", confConnect{version: 5, expiry: 60, will: "w/second", willPayload: "comes", willQoS: 1, willDelay: 2}),
		drop("l"), await("w", "w/second", 1),
	}, want: map[string][]string{"w": {"w/second=comes"}}},
	{name: "delayed will sent when the session ends first, 5", steps: []confStep{
		connect("w", 5, true), sub("w", 1, "w/#", 1),
		connectWith("l", confConnect{version: 5, expiry: 1, will: "w/l", willPayload: "session ended", willQoS: 1, willDelay: 300}),
		drop("l"), await("w", "w/l", 1),
	}, want: map[string][]string{"w": {"w/l=session ended"}}},

	// persistent sessions across a restart
	{name: "queued messages survive a restart, 3.1.1", restart: true, steps: []confStep{
		connect("s", 4, false), sub("s", 1, "t/#", 2), disconnect("s"),
		connect("p", 4, true), pub("p", "t/a", 1, 1, "one"), pub("p", "t/a", 2, 2, "two"), disconnect("p"),
		restart(),
		connect("s", 4, false),
	}, want: map[string][]string{"s": {"t/a=one", "t/a=two"}}},
	{name: "in-flight messages and subscriptions survive a restart, 5", restart: true, steps: []confStep{
		connect("s", 5, false), sub("s", 1, "t/#", 2), withhold("s"),
		connect("p", 5, true), pub("p", "t/a", 1, 1, "one"), pub("p", "t/b", 2, 2, "two"),
		settle(), drop("s"), disconnect("p"), restart(),
		connect("s", 5, false),
		connect("p", 5, true), pub("p", "t/a", 1, 1, "after"),
	}, want: map[string][]string{"s": {"t/a=one", "t/b=two", "t/a=after"}}},
	{name: "incoming qos 2 finished after a restart", restart: true, steps: []confStep{
		connect("s", 4, false), sub("s", 1, "t/#", 2),
		connect("p", 4, false), pubHeld("p", "t/a", 9, "once"),
		settle(), drop("s"), drop("p"), restart(),
		connect("s", 4, false),
		connect("p", 4, false), release("p", 9),
	}, want: map[string][]string{"s": {"t/a=once"}}},

	{name: "a restart ends the connections, 5", restart: true, steps: []confStep{
		connect("a", 5, false), connect("b", 5, true), restart(),
		connect("a", 5, false),
	}},
	{name: "a restart ends the connections, 3.1.1", restart: true, steps: []confStep{
		connect("a", 4, false), connect("b", 4, true), restart(),
		connect("a", 4, false),
	}},

	// shared subscriptions
	{name: "shared subscription: each message to one member, 5", shared: []string{"a", "b"}, steps: []confStep{
		connect("a", 5, true), sub("a", 1, "$share/g/t/#", 1),
		connect("b", 5, true), sub("b", 1, "$share/g/t/#", 1),
		connect("n", 5, true), sub("n", 1, "t/#", 1),
		connect("p", 5, true),
		pub("p", "t/a", 1, 1, "1"), pub("p", "t/a", 1, 2, "2"), pub("p", "t/b", 1, 3, "3"),
		pub("p", "t/b", 1, 4, "4"), pub("p", "t/a", 1, 5, "5"), pub("p", "t/a", 1, 6, "6"),
	}},
	{name: "shared subscription, 3.1.1", shared: []string{"a", "b"}, steps: []confStep{
		connect("a", 4, true), sub("a", 1, "$share/g/t/#", 2),
		connect("b", 4, true), sub("b", 1, "$share/g/t/#", 2),
		connect("p", 4, true),
		pub("p", "t/a", 2, 1, "1"), pub("p", "t/a", 2, 2, "2"), pub("p", "t/a", 2, 3, "3"),
	}},

	// overlapping subscriptions
	{name: "overlapping subscriptions", allow: []string{"overlapping copies"}, steps: []confStep{
		connect("s", 4, true), sub("s", 1, "t/#", 1), sub("s", 2, "t/+", 2),
		connect("p", 4, true),
		pub("p", "t/a", 2, 1, "a2"), pub("p", "t/b", 0, 0, "b0"), pub("p", "t/a", 1, 3, "a1"),
	}},
	{name: "overlapping with an exact subscription, 3.1.1", allow: []string{"overlapping copies", "mosquitto: overlapping qos, 3.1.1"}, steps: []confStep{
		connect("s", 4, true), sub("s", 1, "t/#", 1), sub("s", 2, "t/+", 2), sub("s", 3, "t/a", 0),
		connect("p", 4, true),
		pub("p", "t/a", 2, 1, "a2"), pub("p", "t/b", 2, 2, "b2"), pub("p", "t/a", 1, 3, "a1"),
	}, want: map[string][]string{"s": {"t/a=a2", "t/b=b2", "t/a=a1"}}},
	{name: "overlapping with a shared subscription of the same client, 5", allow: []string{"overlapping copies"}, steps: []confStep{
		connect("s", 5, true), sub("s", 1, "t/#", 1), sub("s", 2, "$share/g/t/#", 1),
		connect("p", 5, true),
		pub("p", "t/a", 1, 1, "a1"), pub("p", "t/b", 0, 0, "b0"),
	}},
	{name: "overlapping subscriptions, 5", allow: []string{"overlapping copies"}, steps: []confStep{
		connect("s", 5, true), sub("s", 1, "t/#", 1), sub("s", 2, "t/+", 2),
		connect("p", 5, true),
		pub("p", "t/a", 2, 1, "a2"), pub("p", "t/a", 1, 2, "a1"),
	}},

	// MQTT 5 expiry
	{name: "message expiry set by the publisher is forwarded, 5", compareExpiry: true, steps: []confStep{
		connect("s", 5, true), sub("s", 1, "t/#", 1),
		connect("p", 5, true), pubExpiring("p", "t/a", 1, 1, "expires", 100),
	}},
	{name: "no message expiry when the publisher set none, 5", compareExpiry: true, steps: []confStep{
		connect("s", 5, true), sub("s", 1, "t/#", 1),
		connect("p", 5, true), pub("p", "t/a", 1, 1, "never expires"),
	}},
	{name: "expired queued message not delivered, 5", steps: []confStep{
		connect("s", 5, false), sub("s", 1, "t/#", 1), disconnect("s"),
		connect("p", 5, true), pubExpiring("p", "t/a", 1, 1, "expires", 1), pubExpiring("p", "t/a", 1, 2, "stays", 600),
		elapse(3 * time.Second),
		connect("s", 5, false),
	}, want: map[string][]string{"s": {"t/a=stays"}}},
	{name: "expired retained message not delivered, 5", steps: []confStep{
		connect("p", 5, true), pubRetained("p", "r/kept", 1, 2, "stays"),
		confStep{op: opPublish, client: "p", topic: "r/gone", qos: 1, id: 1, payload: "expires", retain: true, expiry: 1},
		elapse(3 * time.Second),
		connect("s", 5, true), sub("s", 1, "r/#", 1),
	}},
	{name: "session expiry ends the session, 5", steps: []confStep{
		connectWith("s", confConnect{version: 5, expiry: 1}), sub("s", 1, "t/#", 1), disconnect("s"),
		elapse(3 * time.Second),
		connect("p", 5, true), pub("p", "t/a", 1, 1, "no session"),
		connect("s", 5, false),
	}},

	// MQTT 5 flow control
	{name: "receive maximum: at most that many unacknowledged, 5", steps: []confStep{
		connectWith("s", confConnect{version: 5, clean: true, receiveMax: 2}), sub("s", 1, "t/#", 1), withhold("s"),
		connect("p", 5, true),
		pub("p", "t/a", 1, 1, "1"), pub("p", "t/a", 1, 2, "2"), pub("p", "t/a", 1, 3, "3"),
		pub("p", "t/a", 1, 4, "4"), pub("p", "t/a", 1, 5, "5"),
		// The held messages go out as acknowledgements free slots, a round trip each (two at QoS
		// 2), while the final settle's QoS 0 sentinel takes one: await them.
		settle(), ackAll("s"), await("s", "t/a", 5),
	}, want: map[string][]string{"s": {"t/a=1", "t/a=2", "t/a=3", "t/a=4", "t/a=5"}}},
	{name: "receive maximum at qos 2, 5", steps: []confStep{
		connectWith("s", confConnect{version: 5, clean: true, receiveMax: 1}), sub("s", 1, "t/#", 2), withhold("s"),
		connect("p", 5, true),
		pub("p", "t/a", 2, 1, "1"), pub("p", "t/a", 2, 2, "2"), pub("p", "t/a", 2, 3, "3"),
		settle(), ackAll("s"), await("s", "t/a", 3),
	}, want: map[string][]string{"s": {"t/a=1", "t/a=2", "t/a=3"}}},
	{name: "receive maximum on a resumed session, 5", steps: []confStep{
		connectWith("s", confConnect{version: 5, expiry: 3600, receiveMax: 2}), sub("s", 1, "t/#", 1), disconnect("s"),
		connect("p", 5, true),
		pub("p", "t/a", 1, 1, "1"), pub("p", "t/a", 1, 2, "2"), pub("p", "t/a", 1, 3, "3"),
		pub("p", "t/a", 1, 4, "4"), pub("p", "t/a", 1, 5, "5"),
		connectWith("s", confConnect{version: 5, expiry: 3600, receiveMax: 2, withhold: true}),
		settle(), ackAll("s"), await("s", "t/a", 5),
	}, want: map[string][]string{"s": {"t/a=1", "t/a=2", "t/a=3", "t/a=4", "t/a=5"}}},
	// MQTT-3.1.2-25: a message larger than the client's Maximum Packet Size is discarded, and the
	// session goes on with the next.
	{name: "a queued message larger than the client takes is discarded, 5", steps: []confStep{
		connectWith("s", confConnect{version: 5, expiry: 3600, maxPacket: 200}), sub("s", 1, "t/#", 1), disconnect("s"),
		connect("p", 5, true),
		pub("p", "t/a", 1, 1, "before"), pub("p", "t/a", 1, 2, strings.Repeat("x", 500)), pub("p", "t/a", 1, 3, "after"),
		connectWith("s", confConnect{version: 5, expiry: 3600, maxPacket: 200}),
		settle(),
	}, want: map[string][]string{"s": {"t/a=before", "t/a=after"}}},
}
