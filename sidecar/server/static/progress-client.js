/*
 * progress-sidecar browser client. No build step, no dependency; load it from the sidecar:
 *
 *   <script src="http://sidecar-host:8765/static/progress-client.js"></script>
 *   const client = new ProgressClient({
 *     url: "http://sidecar-host:8765", jobId: "job_abc123", token: "...",
 *     onState: (state) => render(state),          // the whole merged state, after each message
 *     onLog: (entries, reset) => plot(entries),   // metrics history (asks for history=1)
 *   });
 *   client.start();
 *
 * It merges the snapshot and the JSON Merge Patches, reconnects with exponential backoff and
 * jitter, resuming each time from the last state it had (?since=EPOCH:SEQ: the sidecar answers
 * with one patch from that state, or with a fresh snapshot when it no longer knows it), falls
 * back to polling GET /api/jobs/{id} after repeated WebSocket failures (trying the WebSocket
 * again now and then), and stops once the job is complete (with onLog, once the history that
 * follows a finished job's state came). The first onLog of each
 * reconnection has the whole history again, with reset true. Protocol: docs/protocol.md.
 */
(function (root) {
  "use strict";

  // The protocol's names, as sidecar/core/protocol.py has them (a test holds the two together).
  const MESSAGE = { SNAPSHOT: "snapshot", PATCH: "patch", LOG: "log" };
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
  const FINAL_CLOSES = [CLOSE.INVALID_REQUEST, CLOSE.UNAUTHORIZED];
  // The keys a job message adds to the job's state.
  const ENVELOPE_KEYS = ["type", "epoch", "seq", "resumed"];
  // An epoch a `since` can carry back (the server refuses others with 4400, for good).
  const EPOCH = /^[0-9A-Za-z_-]{1,64}$/;

  // Sets an own member, whatever its name: a plain assignment of "__proto__" (a key any
  // progress.json may hold) would replace the object's prototype instead.
  function put(object, key, value) {
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  }

  function copy(object) {
    const result = {};
    for (const [key, value] of Object.entries(object)) put(result, key, value);
    return result;
  }

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

  function withoutEnvelope(message) {
    const fields = copy(message);
    for (const key of ENVELOPE_KEYS) delete fields[key];
    return fields;
  }

  /** The `EPOCH:SEQ` of the state a message brings; null when it names none (older sidecars). */
  function versionOf(message) {
    const { epoch, seq } = message;
    if (typeof epoch !== "string" || !EPOCH.test(epoch)) return null;
    if (!Number.isSafeInteger(seq) || seq < 0) return null;
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
    /**
     * @param {object} options
     * @param {string} [options.url] the sidecar, e.g. "http://host:8765" (default: this page's origin)
     * @param {string} options.jobId the job to follow
     * @param {string} [options.token] the sidecar's token, if it has one
     * @param {function} [options.onState] called with the merged state after each change
     * @param {function} [options.onLog] called with (entries, reset) for history; asks for it
     * @param {function} [options.onStatus] called with "connecting", "live", "polling",
     *   "reconnecting", "complete" or "error: <reason>"
     * @param {number} [options.pollInterval] ms between REST polls (2000)
     * @param {number} [options.failuresBeforePolling] WebSocket failures in a row before polling (3)
     * @param {number} [options.minBackoff] first reconnection pause, ms (250)
     * @param {number} [options.maxBackoff] longest reconnection pause, ms (10000)
     */
    constructor(options) {
      this.options = Object.assign(
        { pollInterval: 2000, failuresBeforePolling: 3, minBackoff: 250, maxBackoff: 10000 },
        options,
      );
      if (!this.options.jobId) throw new Error("jobId is required");
      this.base = (this.options.url || root.location.origin).replace(/\/+$/, "");
      this.state = null;
      this.version = null; // the EPOCH:SEQ of this.state, to resume from
      this.logged = false; // onLog has been called
      this.mode = "idle";
      this.failures = 0;
      this.ws = null;
      this.timer = null;
      this.stopped = true;
      this.polling = false;
      this.polls = 0;
    }

    start() {
      this.stopped = false;
      this._connect();
      return this;
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.ws) {
        this.ws.onclose = null;
        this.ws.close(1000);
        this.ws = null;
      }
    }

    _status(status) {
      this.mode = status;
      if (this.options.onStatus) this.options.onStatus(status);
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
      if (!this.polling) this._status(this.failures ? "reconnecting" : "connecting");
      // The token rides in the subprotocols: browsers cannot set headers on a WebSocket, and a
      // query parameter would end up in logs along the way.
      const protocols = this.options.token ? ["bearer", this.options.token] : [];
      let ws;
      try {
        ws = new WebSocket(this._wsUrl(), protocols);
      } catch (error) {
        this._failed(String(error));
        return;
      }
      this.ws = ws;
      let opened = false;
      let firstState = true; // this connection's first state and first log are still to come
      let firstLog = true;
      // The job ended, and this connection's history is still to come: the end waits for it.
      let endAfterLog = false;
      const end = () => {
        this._complete();
        ws.close(1000);
      };
      ws.onopen = () => {
        opened = true;
      };
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
          }
          if (endAfterLog) end();
          return;
        }
        this.failures = 0;
        this.polling = false;
        if (this.mode !== "live") this._status("live");
        const fields = withoutEnvelope(message);
        // A patch applies to the state held; a connection's first one only if it resumes it.
        const onto = firstState && message.resumed !== true ? null : this.state;
        this.state = message.type === MESSAGE.PATCH && onto ? mergePatch(onto, fields) : fields;
        this.version = versionOf(message);
        firstState = false;
        this._emit();
        if (this.state.complete) {
          // The final state is here: end now, not when the server's close comes (the server
          // paces the closes that follow jobs' ends, so that one may wait a second or two);
          // but a finished job's history comes after its state: its chart needs it first.
          if (this.options.onLog && firstLog) endAfterLog = true;
          else end();
        }
      };
      ws.onclose = (event) => {
        this.ws = null;
        if (this.stopped) return;
        if (this.state && this.state.complete) return this._complete();
        if (FINAL_CLOSES.includes(event.code)) {
          this.stopped = true;
          this._status(`error: ${event.reason || event.code}`);
          return;
        }
        // 4404: the job does not exist (yet); 1001: the sidecar restarts; 1006: the network.
        this._failed(opened ? `closed ${event.code}` : "no connection", event.code);
      };
    }

    _failed(reason, code) {
      if (this.polling) return; // a probe while polling: the polls go on
      this.failures += 1;
      if (this.failures >= this.options.failuresBeforePolling) {
        this.polling = true;
        this.polls = 0;
        this._status("polling");
        this._poll();
        return;
      }
      const delay = reconnectDelay(this.failures, code, this.options);
      this._status("reconnecting");
      this.timer = setTimeout(() => this._connect(), delay);
    }

    async _poll() {
      if (this.stopped || !this.polling) return;
      const headers = this.options.token ? { Authorization: `Bearer ${this.options.token}` } : {};
      try {
        const job = encodeURIComponent(this.options.jobId);
        const response = await fetch(`${this.base}/api/jobs/${job}`, { headers, cache: "no-store" });
        if (!this.polling) return; // the WebSocket came back meanwhile
        if (response.status === 401) {
          this.stopped = true;
          this._status("error: unauthorized");
          return;
        }
        if (response.ok) {
          const job = await response.json();
          this.state = withoutEnvelope(job);
          this.version = versionOf(job); // the body of a snapshot message: it names its version
          this._emit();
          if (this.state.complete) return this._complete();
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
      if (this.options.onState) this.options.onState(this.state);
    }

    _complete() {
      this.stopped = true;
      this._status("complete");
    }
  }

  ProgressClient.mergePatch = mergePatch;
  ProgressClient.reconnectDelay = reconnectDelay;
  ProgressClient.MESSAGE = MESSAGE; // the protocol's names, for pages that read the streams
  ProgressClient.CLOSE = CLOSE;
  root.ProgressClient = ProgressClient;
})(typeof window !== "undefined" ? window : globalThis);
