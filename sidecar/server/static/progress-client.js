// @ts-check
/*
 * progress-sidecar's browser client, a classic script that defines window.ProgressClient; as an
 * ES module: progress-client.mjs; its types: progress-client.d.ts. No build step, no dependency:
 *
 *   <script src="http://sidecar-host:8765/static/progress-client.js"></script>
 *   new ProgressClient({ url: "http://sidecar-host:8765", jobId: "job_abc123", token: "...",
 *     onState: (state) => render(state), onLog: (entries, reset) => plot(entries) }).start();
 *
 * It merges the snapshot and the JSON Merge Patches, reconnects with exponential backoff and
 * jitter, resuming each time from the last state it had (?since=EPOCH:SEQ), falls back to
 * polling GET /api/jobs/{id} after repeated WebSocket failures (trying the WebSocket again now
 * and then), and stops once the job is complete (with onLog, once the history that follows a
 * finished job's state came). The first onLog of each reconnection has the whole history again,
 * with reset true. stop() may be called anywhere, callbacks included: after it no socket stays
 * open, no timer runs, no callback comes. Protocol: docs/protocol.md.
 */
(function (root) {
  "use strict";

  /** @typedef {import("./progress-client").ProgressClientOptions} Options */
  /** @typedef {import("./progress-client").JobState} JobState */
  /** @typedef {import("./progress-client").ClientStatus} ClientStatus */
  /** @typedef {import("./progress-client").ReportedStatus} ReportedStatus */

  // The protocol's names, as sidecar/core/protocol.py has them (a test holds the two together).
  /** @type {import("./progress-client").MessageTypes} */
  const MESSAGE = { SNAPSHOT: "snapshot", PATCH: "patch", LOG: "log" };
  /** @type {import("./progress-client").CloseCodes} */
  const CLOSE = {
    NORMAL: 1000,
    GOING_AWAY: 1001,
    UNSUPPORTED_DATA: 1003,
    TRY_AGAIN_LATER: 1013,
    INVALID_REQUEST: 4400,
    UNAUTHORIZED: 4401,
    NOT_FOUND: 4404,
  };
  // After a 1001 (the sidecar is going away: a restart, a gateway leaving) every client it had
  // drops at once: the first try is spread at random over this many ms, not all at once.
  const RESTART_SPREAD = 1000;
  // After these, asking again cannot help: the client stops.
  /** @type {number[]} */
  const FINAL_CLOSES = [CLOSE.INVALID_REQUEST, CLOSE.UNAUTHORIZED];
  // The keys a job message adds to the job's state.
  const ENVELOPE_KEYS = ["type", "epoch", "seq", "resumed"];
  // An epoch a `since` can carry back (the server refuses others with 4400, for good).
  const EPOCH = /^[0-9A-Za-z_-]{1,64}$/;

  // Sets an own member, whatever its name: a plain assignment of "__proto__" (a key any
  // progress.json may hold) would replace the object's prototype instead.
  /** @param {object} object @param {string} key @param {unknown} value */
  function put(object, key, value) {
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  }

  /** @param {object} object @returns {Record<string, unknown>} */
  function copy(object) {
    /** @type {Record<string, unknown>} */
    const result = {};
    for (const [key, value] of Object.entries(object)) put(result, key, value);
    return result;
  }

  /** @param {unknown} target @param {unknown} patch @returns {unknown} */
  function mergePatch(target, patch) {
    if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
    const isObject = target !== null && typeof target === "object" && !Array.isArray(target);
    const result = isObject ? copy(target) : {};
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete result[key];
      else put(result, key, mergePatch(Object.hasOwn(result, key) ? result[key] : undefined, value));
    }
    return result;
  }

  /** @param {object} message */
  function withoutEnvelope(message) {
    const fields = copy(message);
    for (const key of ENVELOPE_KEYS) delete fields[key];
    return fields;
  }

  /**
   * The `EPOCH:SEQ` of the state a message brings; null when it names none (older sidecars).
   * @param {{epoch?: unknown, seq?: unknown}} message
   */
  function versionOf(message) {
    const { epoch, seq } = message;
    if (typeof epoch !== "string" || !EPOCH.test(epoch)) return null;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) return null;
    return `${epoch}:${seq}`;
  }

  /**
   * The pause before a reconnection, ms: doubling from minBackoff up to maxBackoff, half of it
   * random (no thundering herd); after a first drop with 1001, anywhere in RESTART_SPREAD.
   * @param {number} failures failures in a row, this one included (1 or more)
   * @param {number|undefined} code the close code of the drop (undefined: none opened)
   * @param {{minBackoff: number, maxBackoff: number}} options
   * @returns {number}
   */
  function reconnectDelay(failures, code, options) {
    if (failures === 1 && code === CLOSE.GOING_AWAY) return Math.random() * RESTART_SPREAD;
    const ceiling = Math.min(options.maxBackoff, options.minBackoff * 2 ** failures);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  class ProgressClient {
    /** @param {Options} options what to follow, and the callbacks (progress-client.d.ts) */
    constructor(options) {
      const defaults = { pollInterval: 2000, failuresBeforePolling: 3, minBackoff: 250, maxBackoff: 10000 };
      this.options = { ...defaults, ...options };
      if (!this.options.jobId) throw new Error("jobId is required");
      this.base = (this.options.url || root.location.origin).replace(/\/+$/, "");
      this.state = /** @type {JobState | null} */ (null);
      this.version = /** @type {string | null} */ (null); // the EPOCH:SEQ of this.state
      this.logged = false; // onLog has been called
      this.mode = /** @type {ClientStatus} */ ("idle");
      this.failures = 0;
      this.closeCode = /** @type {number | undefined} */ (undefined); // of the latest failure
      this.ws = /** @type {WebSocket | null} */ (null);
      this.timer = /** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined);
      this.stopped = true;
      this.polling = false;
      this.polls = 0;
      // Counts start() and stop() calls: code that ran a callback, or awaited, goes on only if
      // this is still what it was (a callback may have called stop(), or stop() then start()).
      this.run = 0;
    }

    start() {
      this.stop();
      this.stopped = false;
      this.failures = 0;
      this.polling = false;
      this._connect();
      return this;
    }

    stop() {
      this.stopped = true;
      this.run += 1;
      clearTimeout(this.timer);
      this.timer = undefined;
      const ws = this.ws;
      this.ws = null;
      if (ws) {
        ws.onmessage = ws.onclose = null;
        ws.close(CLOSE.NORMAL);
      }
    }

    /** @param {ReportedStatus} status @param {number} [code] the close that led to it */
    _status(status, code) {
      this.mode = status;
      if (this.options.onStatus) this.options.onStatus(status, code);
    }

    _wsUrl() {
      const url = new URL(`${this.base}/ws/training/${encodeURIComponent(this.options.jobId)}`);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      if (this.options.onLog) url.searchParams.set("history", "1");
      if (this.state && this.version) url.searchParams.set("since", this.version);
      return url.toString();
    }

    _connect() {
      if (this.stopped) return;
      const run = this.run;
      if (!this.polling) {
        if (this.failures) this._status("reconnecting", this.closeCode);
        else this._status("connecting");
        if (run !== this.run) return;
      }
      // The token rides in the subprotocols: browsers cannot set headers on a WebSocket, and a
      // query parameter would end up in logs along the way.
      const protocols = this.options.token ? ["bearer", this.options.token] : [];
      /** @type {WebSocket} */
      let ws;
      try {
        ws = new WebSocket(this._wsUrl(), protocols);
      } catch (error) {
        this._failed(undefined);
        return;
      }
      this.ws = ws;
      const current = () => this.ws === ws; // no stop(), no other connection since
      let firstState = true; // this connection's first state and first log are still to come
      let firstLog = true;
      // The job ended, and this connection's history is still to come: the end waits for it.
      let endAfterLog = false;
      ws.onmessage = (event) => {
        const message = JSON.parse(event.data);
        if (message.type === MESSAGE.LOG) {
          if (this.options.onLog) {
            // A connection's first log has the whole history: after a reconnection it replaces
            // what the earlier ones brought.
            const reset = Boolean(message.reset) || (firstLog && this.logged);
            firstLog = false;
            this.logged = true;
            this.options.onLog(message.entries, reset);
            if (!current()) return;
          }
          if (endAfterLog) this._complete(CLOSE.NORMAL);
          return;
        }
        this.failures = 0;
        if (this.polling) clearTimeout(this.timer); // this probe came through: the polls end
        this.polling = false;
        if (this.mode !== "live") this._status("live");
        if (!current()) return;
        const fields = withoutEnvelope(message);
        // A patch applies to the state held; a connection's first one only if it resumes it.
        const onto = firstState && message.resumed !== true ? null : this.state;
        const state = message.type === MESSAGE.PATCH && onto ? mergePatch(onto, fields) : fields;
        this.state = /** @type {JobState} */ (state);
        this.version = versionOf(message);
        firstState = false;
        this._emit();
        if (!current() || !this.state.complete) return;
        // The final state is here: end now, not when the server's close comes (the server
        // paces the closes that follow jobs' ends, so that one may wait a second or two); but
        // a finished job's history comes after its state: its chart needs it first. The
        // connection closes with 1000, as the server would have: that is the code reported.
        if (this.options.onLog && firstLog) endAfterLog = true;
        else this._complete(CLOSE.NORMAL);
      };
      ws.onclose = (event) => {
        if (!current()) return;
        this.ws = null;
        if (this.state && this.state.complete) return this._complete(event.code);
        if (FINAL_CLOSES.includes(event.code)) {
          this.stop();
          this._status(`error: ${event.reason || event.code}`, event.code);
          return;
        }
        // 4404: the job does not exist (yet); 1001: the sidecar restarts; 1006: the network.
        this._failed(event.code);
      };
    }

    /** @param {number | undefined} code the close code of the failed connection */
    _failed(code) {
      if (this.polling) return; // a probe while polling: the polls go on
      const run = this.run;
      this.failures += 1;
      this.closeCode = code;
      if (this.failures >= this.options.failuresBeforePolling) {
        this.polling = true;
        this.polls = 0;
        this._status("polling", code);
        if (run === this.run) this._poll();
        return;
      }
      const delay = reconnectDelay(this.failures, code, this.options);
      this._status("reconnecting", code);
      if (run === this.run) this.timer = setTimeout(() => this._connect(), delay);
    }

    async _poll() {
      if (this.stopped || !this.polling) return;
      const run = this.run;
      const current = () => run === this.run && this.polling; // no stop(), no WebSocket back
      /** @type {Record<string, string>} */
      const headers = this.options.token ? { Authorization: `Bearer ${this.options.token}` } : {};
      try {
        const job = encodeURIComponent(this.options.jobId);
        const response = await fetch(`${this.base}/api/jobs/${job}`, { headers, cache: "no-store" });
        if (!current()) return;
        if (response.status === 401) {
          this.stop();
          this._status("error: unauthorized");
          return;
        }
        if (response.ok) {
          const body = await response.json();
          if (!current()) return;
          this.state = /** @type {JobState} */ (withoutEnvelope(body));
          this.version = versionOf(body); // the body of a snapshot message: it names its version
          this._emit();
          if (!current()) return;
          if (this.state.complete) return this._complete(undefined);
        }
      } catch (error) {
        // unreachable for now: poll again
      }
      this.polls += 1;
      // Every few polls, try the WebSocket again; its first message ends the polling.
      if (this.polls % 5 === 0 && !this.ws) this._connect();
      this.timer = setTimeout(() => this._poll(), this.options.pollInterval);
    }

    _emit() {
      if (this.options.onState && this.state) this.options.onState(this.state);
    }

    /** @param {number | undefined} code the close that ended it; undefined after a poll */
    _complete(code) {
      this.stop();
      this._status("complete", code);
    }
  }

  ProgressClient.mergePatch = mergePatch;
  ProgressClient.reconnectDelay = reconnectDelay;
  ProgressClient.MESSAGE = MESSAGE; // the protocol's names, for pages that read the streams
  ProgressClient.CLOSE = CLOSE;
  root.ProgressClient = ProgressClient;
})(typeof window !== "undefined" ? window : globalThis);
