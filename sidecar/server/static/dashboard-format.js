/*
 * The dashboard's formatters: every value the page shows goes through one of them. A job's
 * fields are whatever its progress.json and metrics.jsonl hold (any JSON, written by anyone who
 * can write under the jobs root, or put in Redis on a cluster), so each formatter checks the
 * type it takes and shows anything else as "–". No field reaches String(), a template, a DOM
 * property or arithmetic unchecked: an object's own "toString" member makes those throw.
 */
(function (root) {
  "use strict";

  const NONE = "–";
  /** The most characters a text shows; the rest becomes "…". */
  const TEXT = { badge: 32, field: 200, name: 100, title: 1000, error: 2000 };
  /** The steps and values a chart can scale (uPlot's ranges overflow past these). */
  const STEP_LIMIT = Number.MAX_SAFE_INTEGER;
  const VALUE_LIMIT = 1e100;
  /** The longest duration shown as it is, in seconds: 99,999 hours. */
  const DURATION_LIMIT = 99999 * 3600 + 59 * 60 + 59;
  /** A status that can name a CSS class (status-running...); others are "unknown". */
  const STATUS_CLASS = /^[A-Za-z0-9_-]{1,32}$/;

  /** `object[key]` when it is the object's own member (never an inherited "toString" or a
   * "__proto__" that a merge turned into a prototype); undefined otherwise. */
  function field(object, key) {
    const isObject = object !== null && typeof object === "object";
    return isObject && Object.hasOwn(object, key) ? object[key] : undefined;
  }

  const isNumber = (value) => typeof value === "number" && Number.isFinite(value);
  const isStep = (value) => isNumber(value) && Math.abs(value) <= STEP_LIMIT;
  const isPlotValue = (value) => isNumber(value) && Math.abs(value) <= VALUE_LIMIT;

  /** `value` cut to `max` characters, never between the two halves of a surrogate pair. */
  function cut(value, max) {
    if (value.length <= max) return value;
    let end = max - 1;
    const code = value.charCodeAt(end - 1);
    if (code >= 0xd800 && code <= 0xdbff) end -= 1;
    return `${value.slice(0, end)}…`;
  }

  /** A string (cut to `max` characters); a finite number or a boolean as JSON writes it;
   * `none` for anything else and for "". */
  function text(value, max = TEXT.field, none = NONE) {
    if (typeof value === "string") return value === "" ? none : cut(value, max);
    if (isNumber(value) || typeof value === "boolean") return String(value);
    return none;
  }

  /** A finite number to `digits` significant digits. */
  function number(value, digits = 4) {
    return isNumber(value) ? Number(value.toPrecision(digits)).toString() : NONE;
  }

  function percent(value) {
    return isNumber(value) ? `${value.toFixed(1)} %` : NONE;
  }

  /** A progress bar's value: a finite number within 0..100, 0 for anything else. */
  function bar(value) {
    return isNumber(value) ? Math.min(100, Math.max(0, value)) : 0;
  }

  /** h:mm:ss; "> 99999:59:59" past that. */
  function duration(seconds) {
    if (!isNumber(seconds)) return NONE;
    const s = Math.min(DURATION_LIMIT, Math.max(0, Math.round(seconds)));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const shown = `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
    return seconds > DURATION_LIMIT ? `> ${shown}` : shown;
  }

  /** The local time of an ISO date, with its date unless it is today (`now`); a string that
   * is no date, as it is (cut short). */
  function time(value, now = new Date()) {
    if (typeof value !== "string" || value === "") return NONE;
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return cut(value, TEXT.badge);
    if (date.toDateString() === now.toDateString()) return date.toLocaleTimeString();
    const sameYear = date.getFullYear() === now.getFullYear();
    const day = date.toLocaleDateString(undefined, { year: sameYear ? undefined : "numeric", month: "short", day: "numeric" });
    return `${day}, ${date.toLocaleTimeString()}`;
  }

  function step(state) {
    const current = field(state, "current_step");
    if (!isNumber(current)) return NONE;
    const total = field(state, "total_steps");
    return isNumber(total) ? `${current} / ${total}` : String(current);
  }

  function epoch(state) {
    const current = field(state, "current_epoch");
    if (!isNumber(current)) return NONE;
    const total = field(state, "total_epochs");
    return `${current} / ${isNumber(total) ? total : "?"}`;
  }

  /** A stalled job's ETA is the one it had when it stopped moving: no longer true. */
  function eta(state) {
    if (field(state, "complete") === true) return NONE;
    return field(state, "stalled") === true ? "stalled" : duration(field(state, "eta_seconds"));
  }

  /** How a terminal status ended: "ok" (completed), "bad" (failed, error), "ended" (cancelled,
   * stopped); "" while the job runs. Badges and bars take it as their class. */
  function outcome(state) {
    if (field(state, "complete") !== true) return "";
    const status = field(state, "status");
    const name = typeof status === "string" ? status.toLowerCase() : "";
    if (name === "completed") return "ok";
    return name === "failed" || name === "error" ? "bad" : "ended";
  }

  /** The class that colours a row by its status: status-<status>, or status-unknown. */
  function statusClass(status) {
    const name = typeof status === "string" && STATUS_CLASS.test(status) ? status : "unknown";
    return `status-${name.toLowerCase()}`;
  }

  /** A chart's tick label: as many decimals as the ticks' spacing needs. */
  function tick(value, spacing) {
    if (!isNumber(value)) return "";
    if (!isNumber(spacing) || spacing < 1e-20 || Math.abs(value) >= 1e21) return number(value);
    return value.toFixed(Math.max(0, -Math.floor(Math.log10(spacing))));
  }

  root.DashboardFormat = {
    NONE, TEXT, field, isNumber, isStep, isPlotValue,
    text, number, percent, bar, duration, time, step, epoch, eta, outcome, statusClass, tick,
  };
})(window);
