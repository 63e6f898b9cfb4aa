// Package mochifix holds the mends of mochi-mqtt v2.7.9's flaws that live in one hook (Hook),
// and the facts about mochi's clients that the mends and the other parts share (KeepsSession,
// InlinePublisher). It knows mochi and nothing of the rest of the broker: the assembly tells it
// how to persist a message it queues (Persist) and whether the store delivers first.
//
// This comment is the one list of the mochi v2.7.9 flaws the broker mends, wherever the mend
// lives. Each item says what goes wrong, where in mochi (files of
// github.com/mochi-mqtt/server/v2@v2.7.9), where the mend is, the test that fails without it, and
// what upstream would need to change. Tests are in mqttserver/broker unless another package is
// named (mqttdemo/tests is the tests/ directory).
//
// # Packet identifiers, session resume and take-over (this package: Hook, one file a flaw)
//
//   - One map for both sides' packet ids. mochi keeps the ids a client chose and those it chose for
//     messages to the client in one map (Client.State.Inflight), though MQTT keeps them apart. A
//     client back on a persistent session with queued messages subscribes again with id 1 and is
//     refused 0x91 (processSubscribe, server.go:1244); its UNSUBSCRIBE is ignored the same way
//     (server.go:1318); its QoS 1 PUBLISH deletes the broker's message with that id, which is never
//     resent (processPublish, server.go:899). Mend (packetids.go): Hook.OnPacketRead sets the
//     broker's message aside while the client's packet is processed. Test:
//     TestPersistentSessionComesBack. Upstream: two maps, one a side; then none of the packet-id
//     mends below is needed.
//   - The counter takes the client's id meanwhile. A message queued while the client's packet is
//     processed can get that id from mochi's counter (NextPacketID, clients.go:276; it restarts at
//     0 on a resumed session), so the SUBSCRIBE was still refused, or the message set aside lost.
//     Mend (packetids.go): passID moves the counter past the client's id, and Hook.OnSubscribe
//     checks again right before mochi does. Tests: TestSetAsideIDNotReused,
//     TestSubscribeIDTakenMeanwhile. UNSUBSCRIBE and QoS 1 PUBLISH have no hook at that point: a
//     window of microseconds stays.
//   - The counter moves one free id a call. NextPacketID (clients.go:276) takes the client's lock
//     and never passes 65535, so moving it to a client's id 65535 walked the whole id space for
//     every packet. Mend (packetids.go): passID stops once the id is behind the counter, and after
//     passSteps calls. Test: TestBinaryAnyPacketIDCostsTheSame. Upstream: as the first item.
//   - A message set aside during a take-over goes back to the old session and is lost. Mend
//     (packetids.go): Hook.restore queues it again, which follows the take-over. Test:
//     TestSetAsideSurvivesTakeover.
//   - Resend order. A resumed session's queue is resent sorted, unstably, by the low 16 bits of
//     each message's creation second (Inflight.GetAll, inflight.go:86, from ResendInflightMessages,
//     clients.go:304): messages queued within one second come back shuffled. Mend (resendorder.go):
//     renumber puts the queue in the order it was queued, on mochi's copy at the CONNACK
//     (Hook.OnPacketEncode; on the old session it races the old connection's acknowledgements),
//     ending a second before the newest, so that a message queued meanwhile comes after them.
//     Tests: TestQueueOrder, TestTakeoverLeavesOldSessionAlone,
//     TestResumeKeepsOrderOfAMessageQueuedMeanwhile. Upstream: resend in the order queued (a
//     sequence number, or a stable sort on the full time).
//   - Messages queued during a take-over are lost. inheritClientSession copies the old session's
//     messages (server.go:574), then clears them (server.go:592); a message queued to the old
//     session in between, or by a publisher that looked the client up just before
//     (publishToSubscribers, server.go:1015), is lost. Mend (takeover.go): Hook notes what is
//     queued to a session being taken over and hands it to the new connection once mochi has resent
//     the session; a message noted after the hand-over is forwarded. Tests:
//     TestSessionTakeoverLosesNothing, TestNotedAfterHandOverIsForwarded (package mochifix).
//     Upstream: take the old session over under a lock that publishers to it also take.
//   - The connection is registered before its CONNACK and resend. attachClient adds the client
//     (server.go:458) before it writes the CONNACK (server.go:460) and resends the session
//     (server.go:468): a message published then goes out before the CONNACK (paho drops the
//     connection) or before the resent queue; one queued before mochi took the session to resend
//     goes out twice under one id. Mend (startup.go): Hook.OnPacketEncode holds new messages until
//     the connection is established; Hook.OnACLCheck makes such a publisher wait (at most
//     acceptWait) until mochi has taken the session. Tests: TestPersistentSessionComesBack,
//     TestResumeSendsAQueuedMessageOnce (and TestNothingLost in mqttdemo/tests). Upstream: register
//     the client after the CONNACK and the resend.
//   - An acknowledgement recorded but not sent. processPublish records the PUBACK or PUBREC
//     (server.go:947), writes it (server.go:952), and returns on a failed write before it delivers
//     (server.go:965); the record stays and is sent at the next connection, so the client does not
//     send its message again and it is lost. Mend (unsentack.go): Hook.ackNotSent delivers it
//     through the inline publisher; the record is dropped if it holds the id of a message set
//     aside. Tests: TestUnsentAckStillDelivered, TestUnsentAckKeepsOurMessage,
//     TestQoS2ExactlyOnceAcrossNetworkCuts (mqttdemo/tests). Upstream: deliver before the ack.
//   - $SYS inflight below zero. At a take-over mochi clears the old session's messages it has just
//     copied and counts each as gone (ClearInflights, clients.go:336, from server.go:592), then
//     again when the new connection completes them. Mend (takeover.go): Hook.OnQosDropped counts
//     them back for a session taken over. Test: TestBinaryStatsCounters. Upstream: do not count
//     what inheritClientSession has copied.
//   - The old connection ends a session being taken over. inheritClientSession disconnects the old
//     connection (server.go:564) before it marks the session taken over (server.go:572); the old
//     connection's goroutine, checking in between (server.go:488), ends a session that ends at
//     disconnect: queue and subscriptions dropped, the client id removed from the registry. Mend
//     (takeover.go): Hook.OnDisconnect waits until the mark (at most acceptWait). Tests:
//     TestTakeoverOfEndingSessionKeepsItsQueue, TestDataLastingTakeoverOfEndingSession. Upstream:
//     mark the session taken over before disconnecting the old connection.
//
// # Limits (package limits, broker)
//
//   - Packet size without its fixed header. ReadFixedHeader compares remaining length + 1 with
//     MaximumPacketSize (clients.go:456): packets up to four bytes over it pass. Mend: the limits
//     hook's OnPacketRead counts the whole packet (limits/limits.go). Test:
//     TestSecurityPacketSizeIsWholePacket (mqttdemo/tests). Upstream: count the length bytes too
//     (MQTT 5 §3.1.2.11.4).
//   - Writes block under the client's lock. WritePacket holds the client's lock during the socket
//     write (clients.go:603), and a publisher's NextPacketID takes it (clients.go:277): a
//     subscriber that stops reading stalls every publisher sending it QoS 1 or 2. Mend: the
//     connection layer whose Write never blocks, with a byte-bounded queue and a slow-consumer
//     policy (limits/slowclients.go). Tests: TestFaultStalledSubscriber (mqttdemo/tests),
//     TestSlowClientTimeout. Upstream: write outside the lock, or a byte-bounded queue per client
//     drained by its writer.
//   - A 2 KiB read buffer per connection (Options.ClientNetReadBufferSize, server.go:229;
//     clients.go:185), held by every idle connection. Mend: 512 B (limits.IdleReadBuffer, set in
//     broker/run.go) with a pooled 64 KiB read-ahead while data flows (limits/slowclients.go). No
//     test fails without it: it is measured (scripts/bench, BenchmarkIdleConnMemory). Upstream: a
//     small buffer while idle.
//   - Memory bounded by counts only. Each copy to a session is its own payload and packet
//     (Packet.Copy, packets/packets.go:185, from publishToClient, server.go:1029); a session holds
//     MaximumInflight copies whatever their size, drops past it are logged one warning each
//     (server.go:1068); a 3.1.1 session never expires (MaximumSessionExpiryInterval, server.go:72)
//     and sessions have no cap. Mend: limits/queues.go (-max-queued-messages, -max-queued-bytes,
//     -max-sessions, -session-expiry). Tests: TestLoadOfflineSessions (mqttdemo/tests),
//     TestOfflineSessionBytesLimit, TestOfflineSessionMessagesLimit, TestMaxSessions,
//     TestSessionExpiry. Upstream: share the payload between copies, a byte limit per session, a
//     hook before a copy is queued.
//   - No deadline before CONNECT. attachClient reads the CONNECT (server.go:413) before it sets any
//     deadline (server.go:442): a silent connection is held for ever. Mend:
//     broker/connecttimeout.go (ConnectTimeout). Test: TestSecuritySilentConnectionClosed
//     (mqttdemo/tests). Upstream: a connect timeout.
//
// # Storage (package store)
//
//   - Acknowledged before stored. processPublish writes the PUBACK or PUBREC (server.go:952) before
//     it hands the message to the subscribers' sessions (server.go:965): a crash in between loses a
//     message the publisher saw accepted. Mend: the store's OnPublish delivers first, and holds
//     every acknowledgement until what it confirms is committed (store/store.go). Tests:
//     TestDataStoredBeforeAck, TestFaultBrokerKilledMidStream and TestNothingLost (mqttdemo/tests).
//     Upstream: deliver, then acknowledge.
//   - QoS 2 progress not stored. processPubrec moves an outgoing message to PUBREL (server.go:1191)
//     and processPubrel an incoming one to PUBCOMP (server.go:1210) in memory only, with no hook:
//     after a crash the message is delivered twice. Mend: the store's OnPacketRead stores the new
//     state before mochi answers (store/store.go). Test: TestDataStoresPubrelBeforeSending.
//     Upstream: call OnQosPublish (or a hook of its own) with the new state.
//
// # Access (package access)
//
//   - Any hook's yes wins. OnConnectAuthenticate and OnACLCheck return true at the first hook that
//     allows (hooks.go:656, hooks.go:672), so deny rules cannot live in a hook of their own, and a
//     failed OnConnectAuthenticate can only answer "bad user name or password" (server.go:443).
//     Mend: one access hook decides, in OnConnect, and writes the CONNACK that says why itself (an
//     OnConnect error closes without answering, server.go:437) (access/hook.go; limits/queues.go
//     refuses past -max-sessions the same way). Tests: TestSecurityAnonymousAndDeny,
//     TestSecuritySessionOwnership (mqttdemo/tests). Upstream: let OnConnect return a reason code.
//   - Wills unchecked. validateConnect accepts a will topic with wildcards (server.go:538), and
//     sendLWT publishes the will without OnACLCheck (server.go:1516). Mend: the access hook checks
//     the will topic in OnConnect. Test: TestSecurityWillTopic (mqttdemo/tests). Upstream: check
//     the will topic at CONNECT like a PUBLISH topic.
//   - OnWill cannot cancel a will: an error is logged and the will kept (hooks.go:508). Mend: the
//     access hook clears the will's flag, which sendLWT checks first (server.go:1517). Tests:
//     TestSecurityWillTopic, TestSecurityRevokedUserLeavesNoWill (mqttdemo/tests). Upstream: let
//     OnWill cancel.
//   - A delayed will is out of reach. An MQTT 5 will with a delay is held in the server's loop
//     (sendLWT, server.go:1541) and published by sendDelayedLWT (server.go:1745) with no hook that
//     can stop it, and no flag it checks: a reload could not withdraw a removed user's will once
//     its connection had closed. Mend: the access hook notes each held will (OnWill) and, when a
//     reload no longer allows it, injects a DISCONNECT for its closed connection (InjectPacket),
//     on which mochi drops it (processDisconnect, server.go:1407) (access/wills.go). Test:
//     TestSecurityRevokedUserDelayedWillWithdrawn (mqttdemo/tests). Upstream: check the will's
//     flag, or ask a hook, when a delayed will is due.
//   - A client id's session goes to whoever connects with it (inheritClientSession, server.go:562),
//     whatever the user, and a new id is free until attachClient registers its session
//     (server.go:458), after OnConnect: two users racing with one new id both pass. Mend: the access
//     hook refuses another user's client id, and claims a new one from OnConnect to
//     OnSessionEstablished (access/claims.go). Tests: TestSecuritySessionOwnership,
//     TestSecurityNewClientIDRace, TestSecurityRefusedConnectLeavesClientIDFree (mqttdemo/tests).
//     Upstream: an OnSessionTakeover hook, or a user check in inheritClientSession.
//   - A resumed session's queue is resent without OnACLCheck (ResendInflightMessages,
//     clients.go:304), after a reload took the topic away. Mend: withholdUnreadable
//     (access/hook.go). Test: TestSecurityResendChecksPermissions (mqttdemo/tests). Upstream: check
//     the ACL at resend.
//
// # Elsewhere
//
//   - Acks inherit the PUBLISH's user properties (buildAck, server.go:1138) unless
//     Compatibilities.NoInheritedPropertiesOnAck is set; the Eclipse paho MQTT 5 test client then
//     hangs. Mend: set (limits/limits.go, Capabilities). Test:
//     TestSecurityMQTT5AcksCarryNoUserProperties (mqttdemo/tests). Upstream: make it the default.
//   - Close panics when called twice (close(s.done), server.go:1497). Mend: broker.Broker's
//     closeOnce (broker/run.go). No test of its own. Upstream: close once.
//   - The derived $SYS gauges (clients total and disconnected, uptime, memory) are brought up to
//     date only when $SYS is published (publishSysTopics, server.go:1443). Mend: /stats derives
//     them itself (broker/stats.go). Test: TestBinaryStatsCounters.
//
// # Not mended
//
//   - An incoming QoS 2 PUBLISH whose id matches a message in flight to the same client deletes
//     that message (server.go:899): Hook sets aside for QoS 1 only, as the PUBREC state must hold
//     the id until PUBREL. The same map answers an MQTT 5 client's resent QoS 2 PUBLISH with PUBREC
//     0x91 (server.go:896).
//   - Every queued message is marked DUP at resend, also one never sent (clients.go:311).
//   - MQTT 5 message expiry is not restored after a restart (the stored format has none).
//   - Issues 541 (race between Close and connection set-up) and 483 (stale connection after a
//     same-id reconnect).
package mochifix
