// The browser client as a TypeScript frontend uses it, checked by `tsc -p tests/types` (strict)
// against progress-client.d.ts; each @ts-expect-error is a misuse the declarations must refuse.
import DefaultClient, {
  ProgressClient,
  type ClientStatus,
  type JobState,
  type LogEntry,
  type ReportedStatus,
} from "/static/progress-client.mjs";

const seen: string[] = [];

function describe(state: JobState): string {
  const step = typeof state.current_step === "number" ? state.current_step : "?";
  const name: string = state.status ?? "unknown";
  const extra = state["my_own_field"]; // any key a trainer wrote, as JSON
  return `${name} ${step} ${JSON.stringify(extra ?? null)}`;
}

function onStatus(status: ReportedStatus, code: number | undefined): void {
  if (code === ProgressClient.CLOSE.NOT_FOUND) seen.push("no such job (yet)");
  if (status.startsWith("error: ")) seen.push(status.slice("error: ".length));
  switch (status) {
    case "connecting":
    case "live":
    case "reconnecting":
    case "polling":
    case "complete":
      seen.push(status);
  }
}

const client: ProgressClient = new ProgressClient({
  url: "http://sidecar-host:8765",
  jobId: "job_abc123",
  token: "secret",
  onState: (state) => {
    seen.push(describe(state));
    if (state.complete) client.stop(); // stop() in a callback is fine
  },
  onLog: (entries: LogEntry[], reset: boolean) => {
    if (reset) seen.length = 0;
    for (const entry of entries) if (typeof entry.loss === "number") seen.push(entry.loss.toFixed(3));
  },
  onStatus,
  pollInterval: 1000,
  failuresBeforePolling: 2,
  minBackoff: 100,
  maxBackoff: 5000,
}).start();

// Callbacks that take fewer parameters are fine, as with any TypeScript callback.
new DefaultClient({ jobId: "j", onStatus: (status) => seen.push(status) }).start().stop();

const mode: ClientStatus = client.mode;
const last: JobState | null = client.state;
const merged: unknown = ProgressClient.mergePatch({ a: 1 }, { a: null, b: 2 });
const pause: number = ProgressClient.reconnectDelay(1, 1001, { minBackoff: 250, maxBackoff: 10000 });
const kind: "snapshot" | "patch" | "log" = ProgressClient.MESSAGE.PATCH;
const normal: 1000 = ProgressClient.CLOSE.NORMAL;
const global: typeof ProgressClient = globalThis.ProgressClient; // the classic script's global
export const used = [mode, last, merged, pause, kind, normal, global];

// @ts-expect-error jobId is required
new ProgressClient({ url: "http://sidecar-host:8765" });
// @ts-expect-error "idle" is the status before start(), never reported
const never: ReportedStatus = "idle";
// @ts-expect-error no such status
const unknown: ClientStatus = "stopped";
// @ts-expect-error the state may be null before the first message
client.state.status;
// @ts-expect-error onLog's entries are objects
new ProgressClient({ jobId: "j", onLog: (entries: number[]) => entries });
// @ts-expect-error CLOSE is read-only
ProgressClient.CLOSE.NORMAL = 1001;
export const refused = [never, unknown];
