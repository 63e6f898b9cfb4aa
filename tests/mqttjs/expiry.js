// expiry.js URL NAME: issue 27 item 5. A message without a Message Expiry Interval and one
// with 60 s; the subscriber says the interval each arrived with (null: none).
const { client, connected, subscribe, publish, run } = require('./lib')
const [url, name] = process.argv.slice(2)
const topic = name + '/t'
const result = { expiries: {} }

run(5000, result, async () => {
  const s = client(url, name + '-s')
  await connected(s)
  await subscribe(s, topic, { qos: 1 })
  const both = new Promise((resolve) => s.on('message', (t, m, pk) => {
    result.expiries[m] = pk.properties?.messageExpiryInterval ?? null
    if (Object.keys(result.expiries).length === 2) resolve()
  }))
  const p = client(url, name + '-p')
  await connected(p)
  await publish(p, topic, 'none', { qos: 1 })
  await publish(p, topic, 'sixty', { qos: 1, properties: { messageExpiryInterval: 60 } })
  await both
})
