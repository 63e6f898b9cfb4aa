// lib.js: what the scenario scripts share: one JSON line per event, mqtt.js clients with the
// tests' defaults (MQTT 5, no reconnect), promises for the steps, and a deadline.
const mqtt = require('mqtt')
// mqtt.js's own packet parser, to see PUBLISH packets as they arrive, before mqtt.js handles them
const mqttPacket = require(require.resolve('mqtt-packet', { paths: [require.resolve('mqtt')] }))

const say = (o) => console.log(JSON.stringify(o))

// client connects as clientId; its errors, DISCONNECTs and closes are told.
function client (url, clientId, opts = {}) {
  const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, clientId, ...opts })
  c.on('error', (err) => say({ event: 'error', client: clientId, error: err.message }))
  c.on('disconnect', (pk) => say({ event: 'disconnect', client: clientId, reasonCode: pk.reasonCode }))
  c.on('close', () => say({ event: 'close', client: clientId }))
  return c
}

const connected = (c) => new Promise((resolve) => c.once('connect', resolve))
const subscribe = (c, filter, opts) => new Promise((resolve, reject) =>
  c.subscribe(filter, opts, (err, granted) => err ? reject(err) : resolve(granted)))
const publish = (c, topic, payload, opts) => new Promise((resolve, reject) =>
  c.publish(topic, payload, opts, (err) => err ? reject(err) : resolve()))
// end sends DISCONNECT; mqtt.js half-closes and calls back when the broker has closed too: by
// then the broker has handled the DISCONNECT and the session is offline.
const end = (c) => new Promise((resolve) => c.end(false, {}, resolve))

// sentinel returns once a message published by c after everything else came back to it: the
// broker handles one client's packets in order, so it has routed (queued) what c sent before.
async function sentinel (c, topic) {
  await subscribe(c, topic, { qos: 1 })
  const back = new Promise((resolve) => c.on('message', (t) => t === topic && resolve()))
  await publish(c, topic, 'sentinel', { qos: 1 })
  await back
}

// inflight counts the QoS 1 and 2 PUBLISH packets c received and has not yet completed (PUBACK,
// PUBCOMP sent), read off the wire, as the broker's Receive Maximum counts them.
function inflight (c) {
  const w = { now: 0, max: 0 }
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', (p) => { if (p.cmd === 'publish' && p.qos > 0) w.max = Math.max(w.max, ++w.now) })
  c.stream.prependListener('data', (b) => parser.parse(b)) // before mqtt.js handles (and acknowledges) them
  c.on('packetsend', (p) => { if (p.cmd === 'puback' || p.cmd === 'pubcomp') w.now-- })
  return w
}

// run runs the scenario, which fills result, and ends the process within ms: it says the
// result as 'done', or as 'timeout' if the scenario did not finish.
function run (ms, result, scenario) {
  const t = setTimeout(() => { say({ event: 'timeout', ...result }); process.exit(0) }, ms)
  scenario().then(() => { clearTimeout(t); say({ event: 'done', ...result }); process.exit(0) },
    (err) => { say({ event: 'error', error: err.message }); process.exit(0) })
}

module.exports = { say, client, connected, subscribe, publish, end, sentinel, inflight, run }
