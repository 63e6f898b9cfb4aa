// probe.js URL CASE: one MQTT 5 scenario with mqtt.js; prints one JSON line per event.
// Driven by ../mqttjs_test.go; keep it tiny.
const mqtt = require('mqtt')
const [url, scenario] = process.argv.slice(2)
const say = (o) => console.log(JSON.stringify(o))
const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, clientId: 'mqttjs-' + scenario })
c.on('connect', (ack) => {
  const p = ack.properties || {}
  say({ event: 'connack', maximumPacketSize: p.maximumPacketSize, topicAliasMaximum: p.topicAliasMaximum, receiveMaximum: p.receiveMaximum })
  if (scenario === 'connack') c.end()
  if (scenario === 'toolarge') c.publish('big', Buffer.alloc(2048), { qos: 1 }, (err) => say({ event: 'puback', error: err && err.message }))
})
c.on('disconnect', (pk) => say({ event: 'disconnect', reasonCode: pk.reasonCode }))
c.on('error', (err) => say({ event: 'error', error: err.message }))
c.on('close', () => { say({ event: 'close' }); process.exit(0) })
setTimeout(() => { say({ event: 'timeout' }); process.exit(0) }, 5000)
