/*
 * The dashboard's jobs list: every job the sidecar knows, live from /ws/jobs (a snapshot, then
 * merge patches), one row each; while the list is empty, /healthz says why (no jobs root yet, or
 * no job in it). Every value of a job goes through a formatter of dashboard-format.js.
 */
(function (root) {
  "use strict";

  const { protocols, authorization, $, report, guard, setConnection, isListView } = root.DashboardPage;
  const fmt = root.DashboardFormat;
  const { field } = fmt;
  const outcome = fmt.outcome;

  // The list's reconnections: as a job's (ProgressClient.reconnectDelay), up to 10 s apart.
  const LIST_BACKOFF = { minBackoff: 250, maxBackoff: 10000 };
  // Between two looks at /healthz while the jobs list is empty, ms.
  const HEALTH_INTERVAL = 3000;

  /**
   * The jobs list of this page (one per page).
   *
   * Args:
   *   onUpdate: called after each message of /ws/jobs, once the list has it and shows it.
   */
  function create({ onUpdate }) {
    const jobs = new Map();
    let listSocket = null;
    let listFailures = 0;
    let listReady = false; // the list holds every job the sidecar knows (a snapshot came)
    let health = null; // the latest answer of /healthz
    let healthTimer = null;
    let healthBusy = false;

    function connectList() {
      const url = new URL("/ws/jobs", location.href);
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(url, protocols);
      listSocket = ws;
      ws.onmessage = (event) => {
        listFailures = 0;
        guard("the jobs list", () => applyList(JSON.parse(event.data)));
        if (isListView()) setConnection("live", "live");
        renderList();
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
        jobs.clear();
        listReady = true;
      }
      const changes = field(message, "jobs");
      if (changes === null || typeof changes !== "object") return;
      for (const [id, change] of Object.entries(changes)) {
        if (change === null) jobs.delete(id);
        else jobs.set(id, ProgressClient.mergePatch(jobs.get(id) || {}, change));
      }
    }

    function renderList() {
      const body = document.querySelector("#jobs tbody");
      const ids = [...jobs.keys()].sort();
      // An empty list says why once /healthz has: no root yet (a notice), or no job in it.
      const missingRoot = ids.length === 0 && rootMissing();
      const notice = $("jobs-root");
      notice.hidden = !missingRoot;
      const rootPath = fmt.text(field(health, "root_path") ?? field(health, "root"), fmt.TEXT.title);
      notice.textContent = missingRoot ? `The jobs root ${rootPath} does not exist (yet): the sidecar is waiting for it.` : "";
      $("jobs-empty").hidden = ids.length > 0 || missingRoot || health === null;
      if (field(health, "role") === "gateway") {
        $("jobs-empty").textContent =
          field(health, "bus") === "down"
            ? `No jobs yet: this gateway's bus is down, and it retries. ${fmt.text(field(health, "bus_reason") ?? "Redis does not answer", fmt.TEXT.field)}`
            : "No jobs on any node of the cluster yet.";
      }
      $("jobs-table").hidden = ids.length === 0;
      body.replaceChildren(
        ...ids.map((id) => {
          try {
            return jobRow(id, jobs.get(id));
          } catch (error) {
            report(`job ${id}`, error);
            return unrenderableRow(id);
          }
        }),
      );
      watchHealth();
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
      renderList();
    }

    // --- showing and hiding the list -------------------------------------------------------------

    function show() {
      $("jobs-view").hidden = false;
      document.title = "progress-sidecar";
      const open = listSocket && listSocket.readyState === WebSocket.OPEN;
      setConnection(open ? "live" : "connecting…", open ? "live" : "");
      renderList();
    }

    function hide() {
      $("jobs-view").hidden = true;
    }

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

  function jobLink(id) {
    const link = document.createElement("a");
    link.href = `#job=${encodeURIComponent(id)}`;
    link.textContent = id;
    return link;
  }

  function flag(text, why) {
    const element = document.createElement("span");
    element.className = "flag";
    element.textContent = text;
    element.title = fmt.text(why, fmt.TEXT.title, "");
    return element;
  }

  function jobRow(id, job) {
    const row = document.createElement("tr");
    row.dataset.job = id;
    row.className = `${fmt.statusClass(field(job, "status"))}${field(job, "stalled") === true ? " stalled" : ""}`;
    const cells = [];
    const name = document.createElement("td");
    name.append(jobLink(id));
    cells.push(name);
    const node = document.createElement("td");
    const nodeName = document.createElement("span");
    nodeName.className = "node";
    nodeName.textContent = fmt.text(field(job, "node"), fmt.TEXT.name);
    // a long name is cut short: whole on hover
    if (typeof field(job, "node") === "string") nodeName.title = fmt.text(field(job, "node"), fmt.TEXT.title);
    node.append(nodeName);
    cells.push(node);
    const status = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = fmt.text(field(job, "status"), fmt.TEXT.badge, "?");
    status.append(badge);
    if (field(job, "stalled") === true) status.append(flag("stalled", field(job, "stall_reason")));
    if (field(job, "read_error")) status.append(flag("unreadable", field(job, "read_error")));
    cells.push(status);
    const progress = document.createElement("td");
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = fmt.bar(field(job, "progress"));
    bar.className = outcome(job);
    bar.setAttribute("aria-label", `${id} progress`);
    progress.append(bar, ` ${fmt.percent(field(job, "progress"))}`);
    cells.push(progress);
    for (const text of [fmt.step(job), fmt.number(field(job, "loss")), fmt.eta(job), fmt.time(field(job, "updated_at"))]) {
      const cell = document.createElement("td");
      cell.className = "num";
      cell.textContent = text;
      cells.push(cell);
    }
    row.append(...cells);
    return row;
  }

  /** A row that could not be made: the job's link, and a word saying so. */
  function unrenderableRow(id) {
    const row = document.createElement("tr");
    row.dataset.job = id;
    row.className = "status-unknown unrenderable";
    const name = document.createElement("td");
    name.append(jobLink(id));
    const rest = document.createElement("td");
    rest.colSpan = 7;
    rest.textContent = "this job cannot be shown";
    row.append(name, rest);
    return row;
  }

  root.JobsList = { create };
})(window);
