// flow.js URL NAME: issue 27 item 1. A subscriber with Receive Maximum 5 gets 100 QoS 1
// messages from a second client; it says what arrived, in which order, and how many at most
// were unacknowledged at once.
const { client, connected, subscribe, publish, inflight, run } = require('./lib')
const [url, name] = process.argv.slice(2)
const topic = name + '/t'
const n = 100
const got = []
const result = { received: 0, order: got }

run(8000, result, async () => {
  const s = client(url, name + '-s', { properties: { receiveMaximum: 5 } })
  const w = inflight(s)
  await connected(s)
  await subscribe(s, topic, { qos: 1 })
  const all = new Promise((resolve) => s.on('message', (t, m) => {
    got.push(Number(m))
    result.received = got.length
    result.maxInflight = w.max
    if (got.length === n) resolve()
  }).on('close', resolve)) // closed early: the result says how far it got
  const p = client(url, name + '-p')
  await connected(p)
  await Promise.all(Array.from({ length: n }, (_, i) => publish(p, topic, String(i), { qos: 1 })))
  await all
  result.up = s.connected
})
