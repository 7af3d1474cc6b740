/*
 * The jobs list's table: one row element per job, made once and then only changed where its
 * job changed (a cell's text is set only when it differs); the columns' sort keys; and the
 * placing of rows in a new order with the fewest moves. Every value of a job goes through a
 * formatter of dashboard-format.js.
 */
(function (root) {
  "use strict";

  const fmt = root.DashboardFormat;
  const { field, isNumber } = fmt;

  // An error under a job's name: this many characters at most (the whole of it in its title).
  const ERROR_SHOWN = fmt.TEXT.name;
  // The cells of a row with text only, in order, after the pick, job, node, status and progress.
  const TEXT_CELLS = ["step", "loss", "eta", "started", "duration", "updated"];
  // Texts, ids and nodes sort as people read them: "job2" before "job10".
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  /** A date's milliseconds since the epoch, or null for anything that is no date. */
  function dateMs(value) {
    if (typeof value !== "string" || value === "") return null;
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : ms;
  }

  /** The loss a row shows: `loss`, or `final_loss` when the job has no usable loss. */
  function lossOf(job) {
    const loss = field(job, "loss");
    if (isNumber(loss)) return loss;
    const final = field(job, "final_loss");
    return isNumber(final) ? final : loss;
  }

  /** Seconds from started_at to updated_at (a finished job) or to `now` (ms), or null. */
  function durationOf(job, now) {
    const started = dateMs(field(job, "started_at"));
    if (started === null) return null;
    const end = field(job, "complete") === true ? dateMs(field(job, "updated_at")) : now;
    return end === null ? null : (end - started) / 1000;
  }

  /** The status a job is counted and filtered under: its own, lower case, or "?". */
  function statusKey(job) {
    const status = field(job, "status");
    return typeof status === "string" && status !== "" ? fmt.text(status.toLowerCase(), fmt.TEXT.badge) : "?";
  }

  const text = (value) => (typeof value === "string" ? value : null);
  const number = (value) => (isNumber(value) ? value : null);

  /** Each sortable column: its sort key (a number, a string, or null: last either way) and the
   * direction of its first click. */
  const COLUMNS = {
    job: { key: (job, id) => id, first: "asc" },
    node: { key: (job) => text(field(job, "node")), first: "asc" },
    status: { key: (job) => statusKey(job), first: "asc" },
    progress: { key: (job) => number(field(job, "progress")), first: "desc" },
    step: { key: (job) => number(field(job, "current_step")), first: "desc" },
    loss: { key: (job) => number(lossOf(job)), first: "asc" },
    eta: { key: (job) => (field(job, "complete") === true ? null : number(field(job, "eta_seconds"))), first: "asc" },
    started: { key: (job) => dateMs(field(job, "started_at")), first: "desc" },
    duration: { key: (job, id, now) => durationOf(job, now), first: "desc" },
    updated: { key: (job) => dateMs(field(job, "updated_at")), first: "desc" },
  };

  /** Orders two sort keys, `sign` 1 (ascending) or -1; a missing key goes last either way. */
  function compareKeys(a, b, sign) {
    if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
    if (typeof a === "number" && typeof b === "number") return sign * (a - b);
    if (typeof a === "number" || typeof b === "number") return typeof a === "number" ? -1 : 1;
    return sign * collator.compare(a, b);
  }

  function cell(className) {
    const element = document.createElement("td");
    if (className) element.className = className;
    return element;
  }

  /** A job's row: its elements made once, filled by `fill`. */
  function makeRow(id) {
    const el = document.createElement("tr");
    el.dataset.job = id;
    const pick = document.createElement("input");
    pick.type = "checkbox";
    pick.dataset.pick = id;
    pick.setAttribute("aria-label", `compare ${id}`);
    const link = document.createElement("a");
    link.href = `#job=${encodeURIComponent(id)}`;
    link.textContent = id;
    const error = document.createElement("div");
    error.className = "job-error";
    error.hidden = true;
    const node = document.createElement("span");
    node.className = "node";
    const badge = document.createElement("span");
    badge.className = "badge";
    const flags = document.createElement("span");
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", `${id} progress`);
    const percent = document.createTextNode("");
    const cells = [cell("pick"), cell("job"), cell(), cell(), cell()];
    cells[0].append(pick);
    cells[1].append(link, error);
    cells[2].append(node);
    cells[3].append(badge, flags);
    cells[4].append(bar, " ", percent);
    const texts = TEXT_CELLS.map(() => cell("num"));
    el.append(...cells, ...texts);
    return { id, el, pick, error, node, badge, flags, bar, percent, texts, shown: [], flagsShown: "", broken: false, tall: false };
  }

  function setText(node, value) {
    if (node.textContent !== value) node.textContent = value;
  }

  function setTitle(element, value) {
    if (value === "") element.removeAttribute("title");
    else if (element.title !== value) element.title = value;
  }

  function flag(label, why) {
    const element = document.createElement("span");
    element.className = "flag";
    element.textContent = label;
    element.title = fmt.text(why, fmt.TEXT.title, "");
    return element;
  }

  /** Shows `job` in `row`, `now` (ms) for a running job's duration; may throw on a value no
   * formatter foresaw (the caller shows the row as unrenderable then). */
  function fill(row, job, now) {
    const stalled = field(job, "stalled") === true;
    const className = `${fmt.statusClass(field(job, "status"))}${stalled ? " stalled" : ""}`;
    if (row.el.className !== className) row.el.className = className;
    const error = field(job, "error");
    const errorText = fmt.text(error, ERROR_SHOWN, "");
    setText(row.error, errorText);
    setTitle(row.error, fmt.text(error, fmt.TEXT.title, ""));
    row.error.hidden = errorText === "";
    row.tall = errorText !== ""; // two lines high (jobs-window.js)
    const node = field(job, "node");
    setText(row.node, fmt.text(node, fmt.TEXT.name));
    // a long name is cut short: whole on hover
    setTitle(row.node, typeof node === "string" ? fmt.text(node, fmt.TEXT.title) : "");
    setText(row.badge, fmt.text(field(job, "status"), fmt.TEXT.badge, "?"));
    const readError = field(job, "read_error");
    const flagsKey = `${stalled}\u0000${readError ? fmt.text(readError, fmt.TEXT.title, "?") : ""}\u0000${fmt.text(field(job, "stall_reason"), fmt.TEXT.title, "")}`;
    if (flagsKey !== row.flagsShown) {
      const flags = [];
      if (stalled) flags.push(flag("stalled", field(job, "stall_reason")));
      if (readError) flags.push(flag("unreadable", readError));
      row.flags.replaceChildren(...flags);
      row.flagsShown = flagsKey;
    }
    const value = fmt.bar(field(job, "progress"));
    if (row.bar.value !== value) row.bar.value = value;
    const outcome = fmt.outcome(job);
    if (row.bar.className !== outcome) row.bar.className = outcome;
    setText(row.percent, fmt.percent(field(job, "progress")));
    const loss = lossOf(job);
    const isFinal = loss !== field(job, "loss");
    const texts = [
      fmt.step(job),
      fmt.number(loss),
      fmt.eta(job),
      fmt.time(field(job, "started_at")),
      fmt.duration(durationOf(job, now)),
      fmt.time(field(job, "updated_at")),
    ];
    texts.forEach((shown, i) => {
      if (row.shown[i] !== shown) row.texts[i].textContent = shown;
    });
    row.shown = texts;
    setTitle(row.texts[1], isFinal && isNumber(loss) ? "final loss" : "");
  }

  /** Shows a running job's duration as of `now` (ms): the one cell that changes by itself. */
  function tick(row, job, now) {
    if (row.broken || field(job, "complete") === true) return;
    const shown = fmt.duration(durationOf(job, now));
    if (row.shown[4] !== shown) row.texts[4].textContent = shown;
    row.shown[4] = shown;
  }

  /** A row that could not be made: the job's link, and a word saying so. */
  function unrenderable(id) {
    const el = document.createElement("tr");
    el.dataset.job = id;
    el.className = "status-unknown unrenderable";
    const name = cell("job");
    const link = document.createElement("a");
    link.href = `#job=${encodeURIComponent(id)}`;
    link.textContent = id;
    name.append(link);
    const rest = cell();
    rest.colSpan = 4 + TEXT_CELLS.length;
    rest.textContent = "this job cannot be shown";
    el.append(cell("pick"), name, rest);
    return el;
  }

  /** The longest increasing run (as a set of indexes into `values`) among values >= 0. */
  function longestIncreasing(values) {
    const tails = []; // index of the smallest tail of a run of each length
    const before = new Array(values.length).fill(-1);
    values.forEach((value, i) => {
      if (value < 0) return;
      let low = 0;
      let high = tails.length;
      while (low < high) {
        const middle = (low + high) >> 1;
        if (values[tails[middle]] < value) low = middle + 1;
        else high = middle;
      }
      if (low > 0) before[i] = tails[low - 1];
      tails[low] = i;
    });
    const kept = new Set();
    for (let i = tails.length ? tails[tails.length - 1] : -1; i >= 0; i = before[i]) kept.add(i);
    return kept;
  }

  /** Makes `body`'s rows `wanted` (elements, in order): the others leave, and only the rows
   * out of order move (those off the longest run already in order). */
  function place(body, wanted) {
    const keep = new Set(wanted);
    for (const child of [...body.children]) if (!keep.has(child)) child.remove();
    const at = new Map();
    let i = 0;
    for (const child of body.children) at.set(child, i++);
    if (i === wanted.length && wanted.every((el, k) => at.get(el) === k)) return 0;
    const kept = longestIncreasing(wanted.map((el) => at.get(el) ?? -1));
    let next = null;
    let moved = 0;
    for (let k = wanted.length - 1; k >= 0; k--) {
      if (!kept.has(k)) {
        body.insertBefore(wanted[k], next);
        moved += 1;
      }
      next = wanted[k];
    }
    return moved;
  }

  root.JobsTable = { COLUMNS: Object.freeze(COLUMNS), WIDTH: 5 + TEXT_CELLS.length, compareKeys, statusKey, lossOf, makeRow, fill, tick, unrenderable, place };
})(window);
