// @openagents/khala-client/node: what only Node has — a durable file store.
export { fileStore, type FileStoreOptions, removeStore } from "./node/FileStore.js"
