// probe.js URL NAME CASE: one MQTT 5 scenario with mqtt.js as client NAME; prints one JSON line per event.
// Driven by ../mqttjs_test.go; keep it tiny.
const mqtt = require('mqtt')
const [url, name, scenario] = process.argv.slice(2)
const say = (o) => console.log(JSON.stringify(o))
const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, clientId: name })
c.on('connect', (ack) => {
  const p = ack.properties || {}
  say({ event: 'connack', maximumPacketSize: p.maximumPacketSize, topicAliasMaximum: p.topicAliasMaximum, receiveMaximum: p.receiveMaximum })
  if (scenario === 'connack') c.end()
  if (scenario === 'toolarge') c.publish('big', Buffer.alloc(2048), { qos: 1 }, (err) => say({ event: 'puback', error: err && err.message }))
  // a protocol error (MQTT-3.8.3-4): answered by DISCONNECT 0x82, not by a SUBACK
  if (scenario === 'sharednolocal') c.subscribe('$share/g/nolocal', { qos: 1, nl: true }, (err, granted) => { say({ event: 'suback', error: err && err.message, granted }); c.end() })
  // an alias the broker was never told, with an empty topic (MQTT-3.3.2-8): a protocol error too.
  // At QoS 0: at QoS 1 and 2 mqtt.js keeps such a PUBLISH to itself (Unregistered Topic Alias)
  if (scenario === 'aliasunknown') c.publish('', 'x', { qos: 0, properties: { topicAlias: 7 } }, (err) => say({ event: 'sent', error: err && err.message }))
})
c.on('disconnect', (pk) => say({ event: 'disconnect', reasonCode: pk.reasonCode }))
c.on('error', (err) => say({ event: 'error', error: err.message }))
c.on('close', () => { say({ event: 'close' }); process.exit(0) })
setTimeout(() => { say({ event: 'timeout' }); process.exit(0) }, 5000)
