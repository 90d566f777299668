// React bindings: hooks over a KhalaClient, built on useSyncExternalStore so renders see a
// consistent snapshot. `react` is an optional peer dependency of this package.
import { useEffect, useSyncExternalStore } from "react"
import type { ClientEvent, Document, KhalaClient, Status } from "./Client.js"

interface Cached {
  version: number
  builtAt: number
  documents: ReadonlyArray<Document>
}
const caches = new WeakMap<KhalaClient, Map<string, Cached>>()
const versions = new WeakMap<KhalaClient, Map<string, number>>()

const bump = (client: KhalaClient, topic: string) => {
  let v = versions.get(client)
  if (v === undefined) versions.set(client, v = new Map())
  v.set(topic, (v.get(topic) ?? 0) + 1)
}
const versionOf = (client: KhalaClient, topic: string) => versions.get(client)?.get(topic) ?? 0

const snapshotOf = (client: KhalaClient, topic: string): ReadonlyArray<Document> => {
  let perClient = caches.get(client)
  if (perClient === undefined) caches.set(client, perClient = new Map())
  const version = versionOf(client, topic)
  const cached = perClient.get(topic)
  if (cached !== undefined && cached.version === version) return cached.documents
  const documents = [...client.documents(topic).values()]
  perClient.set(topic, { version, builtAt: Date.now(), documents })
  return documents
}

const subscribeTopic = (client: KhalaClient, topic: string) => (notify: () => void) =>
  client.on((event: ClientEvent) => {
    if ((event.type === "change" || event.type === "resynced" || event.type === "restored") && event.topic === topic) {
      bump(client, topic)
      notify()
    }
  })

/** The documents of a topic, kept current; subscribes the client to the topic on mount. */
export const useTopic = <T = unknown>(client: KhalaClient, topic: string): ReadonlyArray<Document<T>> => {
  useEffect(() => client.subscribe(topic), [client, topic])
  return useSyncExternalStore(
    subscribeTopic(client, topic),
    () => snapshotOf(client, topic),
    () => snapshotOf(client, topic)
  ) as ReadonlyArray<Document<T>>
}

/** One document of a topic (undefined until it exists). */
export const useDocument = <T = unknown>(client: KhalaClient, topic: string, docKey: string): Document<T> | undefined => {
  const documents = useTopic<T>(client, topic)
  return documents.find((d) => d.docKey === docKey)
}

/** The client's connection status. */
export const useStatus = (client: KhalaClient): Status =>
  useSyncExternalStore(
    (notify) => client.on((event) => event.type === "status" && notify()),
    () => client.status,
    () => client.status
  )
