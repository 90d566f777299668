// A file store for Node (CLIs, Electron main processes, services). Each topic is an append-only
// log file: every `apply` appends one line — the documents and the watermark together — and
// fsyncs it, so a change is durable when `apply` resolves and a crash leaves at most a torn last
// line, which is discarded (and truncated) on load: documents and watermark are never split.
// When the log grows past `compactAfter` records it is rewritten as one record into a temporary
// file, fsynced, and renamed over the log (atomic on POSIX file systems).
import { createHash } from "node:crypto"
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs"
import { open, readFile, rm } from "node:fs/promises"
import { join } from "node:path"
import { deserialize, merge, type SerializedTopic, serialize, type SyncStore, type TopicChange, type TopicState } from "../Store.js"

export interface FileStoreOptions {
  /** Directory for the topic logs (created if missing). */
  readonly directory: string
  /** fsync every apply (default true). false trades durability for speed. */
  readonly fsync?: boolean
  /** Compact a topic's log after this many appended records (default 1000). */
  readonly compactAfter?: number
}

interface Record_ extends SerializedTopic {
  /** 1 when the record replaces the documents (a snapshot or a compaction). */
  readonly r?: 1
}

export const fileStore = (options: FileStoreOptions): SyncStore => {
  mkdirSync(options.directory, { recursive: true })
  const fsync = options.fsync ?? true
  const compactAfter = options.compactAfter ?? 1000
  const fileOf = (topic: string) => join(options.directory, `${createHash("sha256").update(topic).digest("hex").slice(0, 32)}.log`)
  const states = new Map<string, { state: TopicState | undefined; records: number }>()
  // One operation at a time per topic.
  const locks = new Map<string, Promise<unknown>>()
  const locked = <A>(topic: string, f: () => Promise<A>): Promise<A> => {
    const previous = locks.get(topic) ?? Promise.resolve()
    const next = previous.then(f, f)
    locks.set(topic, next.catch(() => undefined))
    return next
  }

  const loadTopic = async (topic: string) => {
    const cached = states.get(topic)
    if (cached !== undefined) return cached
    let text = ""
    try {
      text = await readFile(fileOf(topic), "utf8")
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    }
    let state: TopicState | undefined
    let records = 0
    let valid = 0
    for (const line of text.split("\n")) {
      if (line.length === 0) continue
      let record: Record_
      try {
        record = JSON.parse(line) as Record_
      } catch {
        break // a torn write: the rest is discarded
      }
      const change: TopicChange = { ...deserialize(record), upserts: deserialize(record).documents, replace: record.r === 1 }
      state = merge(state, change)
      records++
      valid += Buffer.byteLength(line, "utf8") + 1
    }
    if (valid < Buffer.byteLength(text, "utf8")) {
      const handle = await open(fileOf(topic), "r+")
      await handle.truncate(valid)
      await handle.sync()
      await handle.close()
    }
    const entry = { state, records }
    states.set(topic, entry)
    return entry
  }

  const append = (topic: string, line: string) => {
    const fd = openSync(fileOf(topic), "a")
    try {
      writeSync(fd, `${line}\n`)
      if (fsync) fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  }

  const rewrite = (topic: string, state: TopicState) => {
    const file = fileOf(topic)
    const tmp = `${file}.${process.pid}.tmp`
    const fd = openSync(tmp, "w")
    try {
      writeSync(fd, `${JSON.stringify({ ...serialize(state), r: 1 })}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, file)
    if (fsync) {
      const dir = openSync(options.directory, "r")
      try {
        fsyncSync(dir)
      } finally {
        closeSync(dir)
      }
    }
  }

  return {
    load: (topic) => locked(topic, async () => (await loadTopic(topic)).state),
    apply: (topic, change) =>
      locked(topic, async () => {
        const entry = await loadTopic(topic)
        const record: Record_ = { ...serialize({ epoch: change.epoch, watermark: change.watermark, documents: change.upserts }), ...(change.replace ? { r: 1 as const } : {}) }
        append(topic, JSON.stringify(record))
        entry.state = merge(entry.state, change)
        entry.records++
        if (entry.records > compactAfter) {
          rewrite(topic, entry.state)
          entry.records = 1
        }
      }),
    clear: (topic) =>
      locked(topic, async () => {
        states.delete(topic)
        await rm(fileOf(topic), { force: true })
      })
  }
}

/** Remove a store directory (tests, resets). */
export const removeStore = (directory: string) => rmSync(directory, { recursive: true, force: true })
