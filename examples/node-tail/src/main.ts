// node-tail: follow one Khala topic from Node and print every new document as a JSON line, with
// the client's durable file store, so a restarted tail resumes after the last document it
// printed — none twice, none skipped.
//
//   node-tail --topic <topic> --token <control access token>
//             [--control http://127.0.0.1:4200] [--khala ws://127.0.0.1:4101/sync/v1/ws]
//             [--runtime http://127.0.0.1:4100] [--state .data/node-tail]
//
// The sync token comes from control (`POST /api/sync/token`, Bearer = the access token) with the
// topic's class as its scope; the client asks again for every connection and before expiry.
// stdout: one line per document `{"topic","docKey","docVersion","value"}`; stderr: what the tail
// is doing (`resuming <topic> after watermark <n>`, status changes, recoveries, errors).
// SIGINT/SIGTERM: the client closes (pending writes reach the file first) and the process exits 0.
import { createClient, type WebSocketConstructor } from "@openagents/khala-client"
import { fileStore } from "@openagents/khala-client/node"
import { parseArgs } from "node:util"
import WebSocket from "ws"

const { values } = parseArgs({
  options: {
    topic: { type: "string" },
    token: { type: "string" },
    control: { type: "string", default: "http://127.0.0.1:4200" },
    khala: { type: "string", default: "ws://127.0.0.1:4101/sync/v1/ws" },
    runtime: { type: "string", default: "http://127.0.0.1:4100" },
    state: { type: "string", default: ".data/node-tail" }
  }
})

const note = (text: string) => process.stderr.write(`node-tail: ${text}\n`)
const usage = (problem: string) => {
  note(`${problem}\nusage: node-tail --topic <topic> --token <access token> [--control URL] [--khala URL] [--runtime URL] [--state DIR]`)
  process.exit(2)
}
const topic = values.topic ?? usage("--topic is required")
const token = values.token ?? process.env["OA_ACCESS_TOKEN"] ?? usage("--token (or OA_ACCESS_TOKEN) is required")
const scope = topic.split(":")[0]!

const store = fileStore({ directory: values.state })
const restored = await store.load(topic)
note(`resuming ${topic} after watermark ${restored?.watermark ?? 0n}`)

const client = createClient({
  url: values.khala,
  // Snapshots (stale-cursor recovery) are served by the runtime's HTTP port.
  snapshotBaseUrl: values.runtime,
  WebSocket: WebSocket as unknown as WebSocketConstructor,
  store,
  tokenProvider: async () => {
    const response = await fetch(`${values.control}/api/sync/token`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ scopes: [scope] })
    })
    const body = (await response.json()) as { data?: { token?: string }; message?: string; error?: { message?: string } }
    if (response.status !== 200 || body.data?.token === undefined) throw new Error(`sync token refused (${response.status}): ${body.error?.message ?? body.message ?? ""}`)
    return body.data.token
  }
})

const bigint = (_: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v)

client.on((e) => {
  switch (e.type) {
    case "change": {
      const docs = client.documents(e.topic)
      for (const key of e.changed) {
        const doc = docs.get(key)
        if (doc !== undefined) process.stdout.write(`${JSON.stringify({ topic: e.topic, docKey: doc.docKey, docVersion: doc.docVersion, value: doc.value ?? null }, bigint)}\n`)
      }
      break
    }
    case "status":
      note(`status ${e.status}`)
      break
    case "live":
      note(`live at watermark ${client.watermark(e.topic)}`)
      break
    case "resynced":
      note(`resynced ${e.topic} from ${e.via} at watermark ${e.watermark}${e.gap ? " (events in between were missed)" : ""}`)
      break
    case "restored":
      note(`restored ${e.documents} document(s) of ${e.topic} from ${values.state}`)
      break
    case "error":
      note(`error ${e.error.code}: ${e.error.message}`)
      break
    case "reauth_required":
    case "upgrade_required":
    case "unauthorized":
      // The client has stopped until the app acts; so do we.
      note(`stopped: ${e.type}`)
      void client.close().then(() => process.exit(1))
      break
    default:
      break // events a later client adds
  }
})

client.subscribe(topic)

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void client.close().then(() => process.exit(0))
  })
}
