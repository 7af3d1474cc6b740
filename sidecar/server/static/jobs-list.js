/*
 * The dashboard's jobs list: every job the sidecar knows, live from /ws/jobs (a snapshot, then
 * merge patches), one row each (jobs-table.js), filtered and ordered as the hash says
 * (list-filter.js); ticked jobs open the compare view (jobs-picks.js). While the list is empty,
 * /healthz says why (no jobs root yet, or no job in it).
 *
 * Built for a thousand jobs changing every second: each message only notes which jobs changed;
 * once per frame those rows change (and no other), and rows move only when the order changed
 * (a long list's, at most every MOVE_INTERVAL); a long list's table holds only the rows near the
 * viewport (jobs-window.js).
 */
(function (root) {
  "use strict";

  const { protocols, authorization, $, report, guard, setConnection, isListView } = root.DashboardPage;
  const fmt = root.DashboardFormat;
  const { field } = fmt;
  const table = root.JobsTable;
  const { matches, searchText } = root.ListFilter;

  // The list's reconnections: as a job's (ProgressClient.reconnectDelay), up to 10 s apart.
  const LIST_BACKOFF = { minBackoff: 250, maxBackoff: 10000 };
  // Between two looks at /healthz while the jobs list is empty, ms.
  const HEALTH_INTERVAL = 3000;
  // The running jobs' durations move by the second.
  const TICK_INTERVAL = 1000;
  // A long list whose jobs change all the time moves its rows at most this often, ms: a row
  // moved into the window costs the browser its styles and layout anew, while a row's cells
  // changing cost little (they follow every frame).
  const MOVE_INTERVAL = 500;

  /**
   * The jobs list of this page (one per page).
   *
   * Args:
   *   onUpdate: called after each message of /ws/jobs, once the list has it (its rows follow
   *     at the next frame).
   */
  function create({ onUpdate }) {
    const jobs = new Map();
    const rows = new Map(); // job id -> its row (jobs-table.js), kept while the job is
    const dirty = new Set(); // the jobs whose row is behind
    let orderStale = true; // the filters, the order or the window changed: place the rows now
    let jobsMoved = false; // jobs changed: their places may have too
    let placedAt = 0;
    let moveTimer = null;
    let frame = null;
    let listSocket = null;
    let listFailures = 0;
    let listReady = false; // the list holds every job the sidecar knows (a snapshot came)
    let health = null; // the latest answer of /healthz
    let healthTimer = null;
    let healthBusy = false;
    let ticker = null;
    const filters = root.ListFilter.controls({ onChange: () => schedule(true) });
    const body = document.querySelector("#jobs tbody");
    const view = root.JobsWindow.create(body, table.WIDTH);
    const picks = root.JobsPicks.create(body);

    function connectList() {
      const url = new URL("/ws/jobs", location.href);
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(url, protocols);
      listSocket = ws;
      ws.onmessage = (event) => {
        listFailures = 0;
        guard("the jobs list", () => applyList(JSON.parse(event.data)));
        if (isListView() && $("connection").className !== "live") setConnection("live", "live");
        schedule(false);
        onUpdate();
      };
      ws.onclose = (event) => {
        if (listSocket !== ws) return;
        listReady = false;
        if (event.code === ProgressClient.CLOSE.UNAUTHORIZED) {
          setConnection("unauthorized: open this page with ?token=…", "down");
          return;
        }
        listFailures += 1;
        if (isListView()) setConnection("reconnecting…", "down");
        const pause = ProgressClient.reconnectDelay(listFailures, event.code, LIST_BACKOFF);
        setTimeout(connectList, pause);
      };
    }

    function applyList(message) {
      if (field(message, "type") === ProgressClient.MESSAGE.SNAPSHOT) {
        for (const id of jobs.keys()) dirty.add(id);
        jobs.clear();
        listReady = true;
      }
      const changes = field(message, "jobs");
      if (changes === null || typeof changes !== "object") return;
      for (const [id, change] of Object.entries(changes)) {
        if (change === null) jobs.delete(id);
        else jobs.set(id, ProgressClient.mergePatch(jobs.get(id) || {}, change));
        dirty.add(id);
      }
    }

    /** Renders at the next frame: a burst of messages costs one pass. */
    function schedule(reorder) {
      if (reorder) orderStale = true;
      if (frame === null) frame = requestAnimationFrame(renderList);
    }

    // --- the rows --------------------------------------------------------------------------------

    function renderList() {
      frame = null;
      if (!$("jobs-view").hidden) guard("the jobs list", render);
      watchHealth();
    }

    function render() {
      view.look();
      const now = Date.now();
      for (const id of dirty) refresh(id, now);
      if (dirty.size > 0) jobsMoved = true;
      dirty.clear();
      showEmpty();
      if (!orderStale && (!jobsMoved || movedLately(now))) return;
      orderStale = false;
      jobsMoved = false;
      placedAt = now;
      const state = filters.state;
      const shown = filters.show(rows.values());
      const column = table.COLUMNS[state.sort];
      const sign = state.dir === "asc" ? 1 : -1;
      const wanted = [];
      for (const row of rows.values()) {
        if (matches(row, state)) wanted.push({ row, key: sortKey(column, row, now) });
      }
      wanted.sort((a, b) => table.compareKeys(a.key, b.key, sign) || table.compareKeys(a.row.id, b.row.id, 1));
      const shownRows = wanted.map((entry) => entry.row);
      table.place(body, view.slice(shownRows));
      const none = jobs.size > 0 && shown === 0;
      showIf("jobs-none", none);
      showIf("jobs-table", jobs.size > 0 && !none);
      picks.show();
      if (view.measure(shownRows)) schedule(true);
    }

    /** Whether a long list's rows moved less than MOVE_INTERVAL ago (then a timer comes back). */
    function movedLately(now) {
      const wait = placedAt + MOVE_INTERVAL - now;
      if (rows.size <= root.JobsWindow.WHOLE || wait <= 0) return false;
      if (moveTimer === null) {
        moveTimer = setTimeout(() => {
          moveTimer = null;
          schedule(false);
        }, wait);
      }
      return true;
    }

    function sortKey(column, row, now) {
      try {
        return column.key(jobs.get(row.id), row.id, now);
      } catch (error) {
        return null;
      }
    }

    /** Brings a job's row up to date: made, changed, or gone with its job. */
    function refresh(id, now) {
      const job = jobs.get(id);
      let row = rows.get(id);
      if (job === undefined) {
        if (row) row.el.remove();
        rows.delete(id);
        picks.forget(id);
        return;
      }
      if (!row || row.broken) {
        const fresh = table.makeRow(id);
        if (row) row.el.replaceWith(fresh.el);
        row = fresh;
        rows.set(id, row);
      }
      row.statusKey = table.statusKey(job);
      row.nodeKey = typeof field(job, "node") === "string" ? field(job, "node") : null;
      row.search = searchText(id, job);
      try {
        table.fill(row, job, now);
        row.pick.checked = picks.has(id);
      } catch (error) {
        report(`job ${id}`, error);
        const broken = table.unrenderable(id);
        row.el.replaceWith(broken);
        row.el = broken;
        row.broken = true;
      }
    }

    function tick() {
      if ($("jobs-view").hidden) return;
      const now = Date.now();
      for (const row of rows.values()) if (row.el.isConnected) guard(`job ${row.id}`, () => table.tick(row, jobs.get(row.id), now));
      if (filters.state.sort === "duration") schedule(true);
    }

    function showEmpty() {
      const empty = jobs.size === 0;
      // An empty list says why once /healthz has: no root yet (a notice), or no job in it.
      const missingRoot = empty && rootMissing();
      showIf("jobs-root", missingRoot);
      const rootPath = fmt.text(field(health, "root_path") ?? field(health, "root"), fmt.TEXT.title);
      setText("jobs-root", missingRoot ? `The jobs root ${rootPath} does not exist (yet): the sidecar is waiting for it.` : "");
      showIf("jobs-empty", empty && !missingRoot && health !== null);
      if (field(health, "role") === "gateway") {
        setText("jobs-empty",
          field(health, "bus") === "down"
            ? `No jobs yet: this gateway's bus is down, and it retries. ${fmt.text(field(health, "bus_reason") ?? "Redis does not answer", fmt.TEXT.field)}`
            : "No jobs on any node of the cluster yet.");
      }
      showIf("jobs-controls", !empty);
      if (empty) {
        showIf("jobs-table", false);
        showIf("jobs-none", false);
      }
    }

    // Each frame sets only what changed: a write, even of the same value, costs a layout.
    function showIf(id, visible) {
      const element = $(id);
      if (element.hidden === visible) element.hidden = !visible;
    }

    function setText(id, text) {
      const element = $(id);
      if (element.textContent !== text) element.textContent = text;
    }

    // --- the jobs root (/healthz), looked at only while the list is empty ------------------------

    function rootMissing() {
      // `root: "missing"` from this sidecar; `root_present: false` from older ones.
      return field(health, "root") === "missing" || field(health, "root_present") === false;
    }

    function watchHealth() {
      const wanted = listReady && isListView() && jobs.size === 0;
      if (!wanted) {
        clearTimeout(healthTimer);
        healthTimer = null;
      } else if (healthTimer === null && !healthBusy) {
        healthTimer = setTimeout(checkHealth, health === null ? 0 : HEALTH_INTERVAL);
      }
    }

    async function checkHealth() {
      healthTimer = null;
      healthBusy = true;
      try {
        const response = await fetch(new URL("/healthz", location.href), { headers: authorization, cache: "no-store" });
        // 503: a degraded sidecar (a background task down) still says where its root is.
        if (response.ok || response.status === 503) health = await response.json();
      } catch (error) {
        // unreachable: the list's socket says so, and brings the next look when it is back
      } finally {
        healthBusy = false;
      }
      schedule(false);
    }

    // --- showing and hiding the list -------------------------------------------------------------

    function show() {
      $("jobs-view").hidden = false;
      document.title = "progress-sidecar";
      const open = listSocket && listSocket.readyState === WebSocket.OPEN;
      setConnection(open ? "live" : "connecting…", open ? "live" : "");
      filters.read();
      if (ticker === null) ticker = setInterval(tick, TICK_INTERVAL);
      schedule(true);
    }

    function hide() {
      $("jobs-view").hidden = true;
      clearInterval(ticker);
      ticker = null;
    }

    // A long list shows the rows near the viewport only: a scroll or a resize moves them.
    const follow = () => {
      if (!$("jobs-view").hidden && rows.size > root.JobsWindow.WHOLE) schedule(true);
    };
    addEventListener("scroll", follow, { passive: true });
    addEventListener("resize", follow);

    return {
      connect: connectList,
      show,
      hide,
      watchHealth,
      has: (id) => jobs.has(id),
      get ready() {
        return listReady;
      },
    };
  }

  root.JobsList = { create };
})(window);
