// resume.js URL NAME QOS N RECEIVEMAX MAXPACKET: issue 27 items 2, 3 and 7. A persistent session
// (Receive Maximum and Maximum Packet Size as given, 0: not set) subscribes and goes away; N
// messages are queued for it at QOS (with MAXPACKET, one too large for it first); it comes back
// and says what arrived, in which order, how many with DUP, and how many at most unacknowledged.
const { client, connected, subscribe, publish, end, sentinel, inflight, run } = require('./lib')
const [url, name, ...nums] = process.argv.slice(2)
const [qos, n, receiveMaximum, maximumPacketSize] = nums.map(Number)
const topic = name + '/t'
const properties = { sessionExpiryInterval: 300 }
if (receiveMaximum) properties.receiveMaximum = receiveMaximum
if (maximumPacketSize) properties.maximumPacketSize = maximumPacketSize
const opts = { clean: false, properties }
const got = []
const result = { received: 0, order: got, dups: 0 }

run(8000, result, async () => {
  const first = client(url, name + '-s', opts)
  await connected(first)
  await subscribe(first, topic, { qos })
  await end(first)

  const p = client(url, name + '-p')
  await connected(p)
  if (maximumPacketSize) await publish(p, topic, 'x'.repeat(maximumPacketSize), { qos })
  for (let i = 0; i < n; i++) await publish(p, topic, String(i), { qos })
  await sentinel(p, name + '/sentinel')

  const s = client(url, name + '-s', opts)
  const w = inflight(s)
  await new Promise((resolve) => s.on('message', (t, m, pk) => {
    got.push(m.length > 10 ? 'too large' : Number(m))
    result.received = got.length
    result.maxInflight = w.max
    if (pk.dup) result.dups++
    if (got.length === n) resolve()
  }).on('close', resolve)) // closed early: the result says how far it got
  result.up = s.connected
})
