/**
 * The types of progress-sidecar's browser client: of the ES module `/static/progress-client.mjs`
 * (this file's exports), and of the global `ProgressClient` that the classic script
 * `/static/progress-client.js` defines. The protocol: docs/protocol.md.
 */

/** A JSON value, as the sidecar sends it (no NaN, no Infinity). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * A job's state: its progress.json as the trainer wrote it (any keys), plus the keys the
 * sidecar sets. Every member may be missing (a missing key and null mean the same); none is
 * to be trusted to have the type named here when a trainer other than the reference one wrote
 * the file, so check before use.
 */
export interface JobState {
  job_id?: string;
  node?: string;
  status?: string;
  progress?: number;
  current_epoch?: number;
  total_epochs?: number;
  current_step?: number;
  total_steps?: number;
  loss?: number;
  eval_loss?: number;
  learning_rate?: number;
  samples_per_second?: number;
  eta_seconds?: number;
  gpu_memory_allocated_gb?: number;
  gpu_memory_used_gb?: number;
  gpu_memory_total_gb?: number;
  gpu_utilization_percent?: number;
  timestamp?: string;
  started_at?: string;
  pid?: number;
  hostname?: string;
  final_loss?: number;
  error?: string;
  /** True once `status` is terminal (completed, failed, cancelled, ...). */
  complete?: boolean;
  stalled?: boolean;
  stall_reason?: string;
  /** Present while the latest read of the job's file failed: why. */
  read_error?: string;
  [key: string]: Json | undefined;
}

/** One line of the job's metrics.jsonl (any JSON object). */
export interface LogEntry {
  step?: number;
  epoch?: number;
  timestamp?: string;
  loss?: number;
  eval_loss?: number;
  learning_rate?: number;
  [key: string]: Json | undefined;
}

/** The names and versions every job message has; the rest of a message is state. */
export interface Envelope {
  type: MessageType;
  job_id: string;
  epoch: string;
  seq: number;
  timestamp: string;
  /** On a reconnection's first patch: it applies to the state named by `since`. */
  resumed?: boolean;
}

/** The whole state (`type: "snapshot"`) or a JSON Merge Patch of it (`type: "patch"`). */
export type StateMessage = Envelope & JobState & { type: "snapshot" | "patch" };

/** Metrics history entries (`?history=1`); `reset`: drop what came before. */
export interface LogMessage extends Envelope {
  type: "log";
  entries: LogEntry[];
  reset?: boolean;
}

/** A message of `/ws/training/{job_id}`. */
export type JobMessage = StateMessage | LogMessage;

export type MessageType = "snapshot" | "patch" | "log";

/**
 * Where the client stands: connecting (the first try), live (a WebSocket brings the state),
 * reconnecting, polling (REST, after repeated WebSocket failures), complete (the job ended; the
 * client stopped), or `error: <reason>` (refused for good: 4400, 4401, an HTTP 401; stopped).
 */
export type ClientStatus =
  | "idle"
  | "connecting"
  | "live"
  | "reconnecting"
  | "polling"
  | "complete"
  | `error: ${string}`;

/** What onStatus is told: every status but the initial "idle". */
export type ReportedStatus = Exclude<ClientStatus, "idle">;

export interface ProgressClientOptions {
  /** The sidecar, e.g. "http://host:8765" (default: this page's origin). */
  url?: string;
  /** The job to follow. */
  jobId: string;
  /** The sidecar's token, if it has one (sent as the `bearer` subprotocol). */
  token?: string;
  /** Called with the whole merged state after each change. */
  onState?: (state: JobState) => void;
  /** Called with the metrics history; asks for it (`?history=1`). `reset`: replace, do not append. */
  onLog?: (entries: LogEntry[], reset: boolean) => void;
  /**
   * Called on each change of status, with the close code of the connection that led to it
   * (1000, 1001, 4404, 4401...), undefined when none did.
   */
  onStatus?: (status: ReportedStatus, code: number | undefined) => void;
  /** ms between REST polls (2000). */
  pollInterval?: number;
  /** WebSocket failures in a row before polling (3). */
  failuresBeforePolling?: number;
  /** First reconnection pause, ms (250). */
  minBackoff?: number;
  /** Longest reconnection pause, ms (10000). */
  maxBackoff?: number;
}

/** The protocol's close codes, by name. */
export interface CloseCodes {
  readonly NORMAL: 1000;
  readonly GOING_AWAY: 1001;
  readonly UNSUPPORTED_DATA: 1003;
  readonly TRY_AGAIN_LATER: 1013;
  readonly INVALID_REQUEST: 4400;
  readonly UNAUTHORIZED: 4401;
  readonly NOT_FOUND: 4404;
}

/** The protocol's message types, by name. */
export interface MessageTypes {
  readonly SNAPSHOT: "snapshot";
  readonly PATCH: "patch";
  readonly LOG: "log";
}

/**
 * Follows one job: merges the snapshot and patches, reconnects with backoff and jitter,
 * resuming from the last state (`?since=`), falls back to REST polling, and stops once the job
 * is complete. `stop()` may be called anywhere, callbacks included: no socket stays open, no
 * timer runs, and no callback comes after it.
 */
export declare class ProgressClient {
  /** @throws Error when `jobId` is missing. */
  constructor(options: ProgressClientOptions);
  /** The latest whole state; null until the first one came. */
  state: JobState | null;
  /** The latest status ("idle" before start()). */
  mode: ClientStatus;
  /** Connects (again, after stop()); returns this client. */
  start(): this;
  /** Closes the connection and cancels every pending retry and poll. */
  stop(): void;
  /** RFC 7386 JSON Merge Patch: `patch` applied to `target` (neither is changed). */
  static mergePatch(target: unknown, patch: unknown): unknown;
  /**
   * The pause before a reconnection, ms: doubling from minBackoff up to maxBackoff, half of it
   * random; after a first drop with 1001, anywhere in a second.
   */
  static reconnectDelay(
    failures: number,
    code: number | undefined,
    options: { minBackoff: number; maxBackoff: number },
  ): number;
  static readonly MESSAGE: MessageTypes;
  static readonly CLOSE: CloseCodes;
}

export default ProgressClient;

type ProgressClientClass = typeof ProgressClient;

declare global {
  /** Defined by the classic script /static/progress-client.js (and by importing the module). */
  var ProgressClient: ProgressClientClass;
}
