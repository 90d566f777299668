// Client side of the Khala wire, over the lite codec (no protobuf runtime in the bundle).
import * as Lite from "@openagents/proto/sync/lite"

export const SUBPROTOCOL = "khala.v1+proto"
export const PROTOCOL_VERSION = "khala.ws.v1"
export const SCHEMA_VERSION = 1
export const Kind = Lite.Kind
export const ErrorCode = {
  UNAUTHORIZED: 1, FORBIDDEN_TOPIC: 2, BAD_SUBSCRIPTION: 3, STALE_CURSOR: 4, PAYLOAD_TOO_LARGE: 5, RATE_LIMITED: 6, INTERNAL: 7,
  TOKEN_EXPIRED: 8, REAUTH_REQUIRED: 9, UPGRADE_REQUIRED: 10, SLOW_CONSUMER: 11, BAD_FRAME: 12, GOING_AWAY: 13
} as const
export const ERROR_CODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(ErrorCode).map(([k, v]) => [v, k.toLowerCase()]))

const frame = (kind: number, desc: Parameters<typeof Lite.encode>[0], message: Record<string, unknown>) =>
  Lite.encode(Lite.KhalaFrame, { schemaVersion: SCHEMA_VERSION, topic: "", seq: 0n, kind, payload: Lite.encode(desc, message) })

export const hello = (m: Record<string, unknown>) => frame(Kind.HELLO, Lite.Hello, m)
export const subscribe = (m: Record<string, unknown>) => frame(Kind.SUBSCRIBE, Lite.Subscribe, m)
export const unsubscribe = (m: Record<string, unknown>) => frame(Kind.UNSUBSCRIBE, Lite.Unsubscribe, m)
export const heartbeat = (sentAtMs: number) => frame(Kind.CLIENT_HEARTBEAT, Lite.Heartbeat, { watermarks: [], sentAtMs: BigInt(sentAtMs) })
export const refreshToken = (token: string, requestId: string) => frame(Kind.REFRESH_TOKEN, Lite.RefreshToken, { token, requestId })

export interface Envelope {
  readonly kind: number
  readonly topic: string
  readonly seq: bigint
  readonly payload: Uint8Array
  readonly schemaVersion: number
}
export const envelope = (data: Uint8Array): Envelope => Lite.decode<Envelope>(Lite.KhalaFrame, data)
const payloadDesc: Record<number, Parameters<typeof Lite.decode>[0]> = {
  [Kind.WELCOME]: Lite.Welcome,
  [Kind.SUBSCRIBED]: Lite.Subscribed,
  [Kind.UNSUBSCRIBED]: Lite.Unsubscribed,
  [Kind.UPDATE_BATCH]: Lite.UpdateBatch,
  [Kind.HEARTBEAT]: Lite.Heartbeat,
  [Kind.ERROR]: Lite.SyncError,
  [Kind.TOKEN_REFRESHED]: Lite.TokenRefreshed
}
export const payload = (e: Envelope): any => {
  const desc = payloadDesc[e.kind]
  return desc === undefined ? undefined : Lite.decode(desc, e.payload)
}
export const snapshot = (bytes: Uint8Array): any => Lite.decode(Lite.SnapshotResponse, bytes)
