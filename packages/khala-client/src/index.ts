// @openagents/khala-client: the Khala sync client for browsers, React Native, Electron and Node.
// No Effect and no protobuf runtime in this entry (see ./effect for the Effect API).
export { applyBatch, type ApplyResult, type IncomingUpdate } from "./Apply.js"
export { classifyClose, type BackoffOptions, type CloseVerdict, delay as backoffDelay } from "./Backoff.js"
export {
  type ClientEvent,
  type ClientOptions,
  createClient,
  type Document,
  KhalaClient,
  KhalaClientError,
  type Status,
  type WebSocketConstructor,
  type WebSocketLike
} from "./Client.js"
export { memoryStore, type StoredDocument, type SyncStore, type TopicChange, type TopicState } from "./Store.js"
export { indexedDbStore } from "./stores/indexeddb.js"
export { localStorageStore } from "./stores/localstorage.js"
