/*
 * The jobs list's filters and order, held in the address's hash so that a filtered view can be
 * shared: `#status=failed&node=NAME&q=TEXT&sort=COLUMN&dir=asc|desc` (each optional). Typing or
 * choosing rewrites the hash in place (history.replaceState: no history entry per keystroke, no
 * hashchange). Also the controls above the table and the counts per status.
 */
(function (root) {
  "use strict";

  const { $, hashParams } = root.DashboardPage;
  const fmt = root.DashboardFormat;
  const { COLUMNS } = root.JobsTable;

  const DEFAULT_SORT = { sort: "updated", dir: "desc" };
  // The statuses named first in the counts, in this order; others follow by name.
  const KNOWN = ["running", "pending", "completed", "failed", "cancelled"];
  // Past these, the counts and the node picker name no more (a hostile list of 1,000 statuses).
  const MAX_COUNTS = 12;
  const MAX_NODES = 500;

  /** The filters and order the hash names (unknown sort columns: the default order). */
  function fromHash() {
    const params = hashParams();
    const sort = params.get("sort");
    const known = sort !== null && Object.hasOwn(COLUMNS, sort);
    const dir = params.get("dir");
    return {
      status: (params.get("status") || "").toLowerCase(),
      node: params.get("node") || "",
      q: params.get("q") || "",
      sort: known ? sort : DEFAULT_SORT.sort,
      dir: dir === "asc" || dir === "desc" ? dir : known ? COLUMNS[sort].first : DEFAULT_SORT.dir,
    };
  }

  /** Writes `state` into the hash, in place. */
  function toHash(state) {
    const params = new URLSearchParams();
    for (const key of ["status", "node", "q"]) if (state[key] !== "") params.set(key, state[key]);
    if (state.sort !== DEFAULT_SORT.sort || state.dir !== DEFAULT_SORT.dir) {
      params.set("sort", state.sort);
      params.set("dir", state.dir);
    }
    const hash = params.toString();
    const address = `${location.pathname}${location.search}${hash ? `#${hash}` : ""}`;
    if (address !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(history.state, "", address);
  }

  const isFiltered = (state) => state.status !== "" || state.node !== "" || state.q !== "";

  /** Whether a row passes the filters; `skipStatus` for the counts, which ignore their own. */
  function matches(row, state, skipStatus = false) {
    if (!skipStatus && state.status !== "" && row.statusKey !== state.status) return false;
    if (state.node !== "" && row.nodeKey !== state.node) return false;
    return state.q === "" || row.search.includes(state.q.toLowerCase());
  }

  /** What the text filter looks in: the job's id, node, status and error, lower case. */
  function searchText(id, job) {
    const parts = [id];
    for (const key of ["node", "status", "error"]) {
      const value = fmt.field(job, key);
      if (typeof value === "string") parts.push(value);
    }
    return parts.join("\n").toLowerCase();
  }

  function option(value, label) {
    const element = document.createElement("option");
    element.value = value;
    element.textContent = label;
    return element;
  }

  /**
   * The controls above the table.
   *
   * Args:
   *   onChange: called with the new state when a control changes it (the hash has it already).
   */
  function controls({ onChange }) {
    let state = fromHash();
    let nodesShown = null;
    let statusesShown = null;

    function set(changes) {
      state = { ...state, ...changes };
      toHash(state);
      onChange(state);
    }

    $("jobs-q").addEventListener("input", (event) => set({ q: event.target.value }));
    $("jobs-status").addEventListener("change", (event) => set({ status: event.target.value }));
    $("jobs-node").addEventListener("change", (event) => set({ node: event.target.value }));
    $("jobs-clear").addEventListener("click", () => {
      $("jobs-q").value = "";
      set({ status: "", node: "", q: "" });
    });
    $("jobs-counts").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-status]");
      if (button) set({ status: button.dataset.status === state.status ? "" : button.dataset.status });
    });
    document.querySelector("#jobs thead").addEventListener("click", (event) => {
      const th = event.target.closest("th[data-sort]");
      if (!th) return;
      const sort = th.dataset.sort;
      const dir = sort === state.sort ? (state.dir === "asc" ? "desc" : "asc") : COLUMNS[sort].first;
      set({ sort, dir });
    });

    /** Reads the hash again (the address changed) and shows it in the controls. */
    function read() {
      state = fromHash();
      if ($("jobs-q").value !== state.q) $("jobs-q").value = state.q;
      statusesShown = null;
      nodesShown = null;
      return state;
    }

    /** Shows the counts per status and the choices of the pickers, from every row. */
    function show(rows) {
      const counts = new Map();
      const nodes = new Set();
      let shown = 0;
      for (const row of rows) {
        if (row.nodeKey !== null) nodes.add(row.nodeKey);
        if (!matches(row, state, true)) continue;
        counts.set(row.statusKey, (counts.get(row.statusKey) || 0) + 1);
        if (state.status === "" || row.statusKey === state.status) shown += 1;
      }
      const statuses = [...counts.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
      showCounts(statuses.slice(0, MAX_COUNTS), counts, statuses.length - MAX_COUNTS);
      const statusKey = JSON.stringify([statuses.slice(0, MAX_COUNTS), state.status]);
      if (statusKey !== statusesShown) {
        statusesShown = statusKey;
        fillPicker($("jobs-status"), "any status", new Set([...KNOWN, ...statuses.slice(0, MAX_COUNTS)]), state.status);
      }
      const sortedNodes = [...nodes].sort().slice(0, MAX_NODES);
      const nodeKey = JSON.stringify([sortedNodes, state.node]);
      if (nodeKey !== nodesShown) {
        nodesShown = nodeKey;
        fillPicker($("jobs-node"), "any node", new Set(sortedNodes), state.node);
      }
      for (const th of document.querySelectorAll("#jobs th[data-sort]")) {
        const sort = th.dataset.sort === state.sort ? (state.dir === "asc" ? "ascending" : "descending") : "none";
        if (th.getAttribute("aria-sort") !== sort) th.setAttribute("aria-sort", sort);
      }
      return shown;
    }

    function showCounts(statuses, counts, more) {
      const key = JSON.stringify([statuses.map((s) => [s, counts.get(s)]), state.status, more]);
      const element = $("jobs-counts");
      if (element.dataset.shown === key) return;
      element.dataset.shown = key;
      const parts = [];
      statuses.forEach((status, i) => {
        if (i > 0) parts.push(" · ");
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.status = status;
        button.className = `count ${fmt.statusClass(status)}`;
        button.setAttribute("aria-pressed", String(status === state.status));
        button.textContent = `${status} ${counts.get(status)}`;
        parts.push(button);
      });
      if (more > 0) parts.push(` · ${more} more`);
      element.replaceChildren(...parts);
    }

    return { read, show, get state() { return state; } };
  }

  const rank = (status) => (KNOWN.includes(status) ? KNOWN.indexOf(status) : KNOWN.length);

  /** A picker's choices: "any", each of `values`, and `chosen` even when no job has it. */
  function fillPicker(select, any, values, chosen) {
    const choices = [...values];
    if (chosen !== "" && !values.has(chosen)) choices.push(chosen);
    select.replaceChildren(option("", any), ...choices.map((value) => option(value, fmt.text(value, fmt.TEXT.name))));
    select.value = chosen;
  }

  root.ListFilter = { controls, matches, isFiltered, searchText };
})(window);
