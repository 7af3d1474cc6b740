/* The dashboard: the jobs list (live from /ws/jobs) and a job view (progress-client.js). Every
 * value of a job goes through a formatter of dashboard-format.js; the chart is loss-chart.js. */
(function () {
  "use strict";

  const token = new URLSearchParams(location.search).get("token") || "";
  const protocols = token ? ["bearer", token] : [];
  const authorization = token ? { Authorization: `Bearer ${token}` } : {};
  const $ = (id) => document.getElementById(id);

  // Job ids as sidecar/core/contract.py has them (a test holds the two together); the server
  // refuses others (4400) all the same.
  const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
  // Between two looks at /healthz while the jobs list is empty, ms.
  const HEALTH_INTERVAL = 3000;

  const fmt = DashboardFormat;
  const { field } = fmt;
  const outcome = fmt.outcome;

  // A throw while showing one job (a bug, or a value no formatter foresaw) costs that row, that
  // fact or the chart only: it is caught, that part shows a placeholder, and the console says
  // why once. Past this many distinct reports, no more (a page left open for days).
  const MAX_REPORTS = 100;
  const reported = new Set();

  function report(what, error) {
    const reason = error instanceof Error ? error.message : typeof error;
    const text = `dashboard: cannot show ${what}: ${reason}`;
    if (reported.has(text) || reported.size >= MAX_REPORTS) return;
    reported.add(text);
    console.error(text);
  }

  function guard(what, render) {
    try {
      render();
    } catch (error) {
      report(what, error);
    }
  }

  /** An element that shows `content` (text from a job) isolated from the text around it. */
  function isolated(content) {
    const element = document.createElement("bdi");
    element.textContent = content;
    return element;
  }

  function setConnection(text, kind) {
    const element = $("connection");
    element.textContent = text;
    element.className = kind || "";
  }

  // --- the jobs list -------------------------------------------------------------------------

  const jobs = new Map();
  let listSocket = null;
  let listFailures = 0;
  let listReady = false; // the list holds every job the sidecar knows (a snapshot came)

  function connectList() {
    const url = new URL("/ws/jobs", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url, protocols);
    listSocket = ws;
    ws.onmessage = (event) => {
      listFailures = 0;
      guard("the jobs list", () => applyList(JSON.parse(event.data)));
      if (currentJob() === null) setConnection("live", "live");
      renderList();
      followListInJobView();
    };
    ws.onclose = (event) => {
      if (listSocket !== ws) return;
      listReady = false;
      if (event.code === ProgressClient.CLOSE.UNAUTHORIZED) {
        setConnection("unauthorized: open this page with ?token=…", "down");
        return;
      }
      listFailures += 1;
      if (currentJob() === null) setConnection("reconnecting…", "down");
      const ceiling = Math.min(10000, 250 * 2 ** listFailures);
      setTimeout(connectList, ceiling / 2 + Math.random() * (ceiling / 2));
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

  function renderList() {
    const body = document.querySelector("#jobs tbody");
    const ids = [...jobs.keys()].sort();
    // An empty list says why once /healthz has: no root yet (a notice), or no job in it.
    const missingRoot = ids.length === 0 && rootMissing();
    const notice = $("jobs-root");
    notice.hidden = !missingRoot;
    const root = fmt.text(field(health, "root_path") ?? field(health, "root"), fmt.TEXT.title);
    notice.textContent = missingRoot ? `The jobs root ${root} does not exist (yet): the sidecar is waiting for it.` : "";
    $("jobs-empty").hidden = ids.length > 0 || missingRoot || health === null;
    if (field(health, "role") === "gateway") {
      $("jobs-empty").textContent =
        field(health, "bus") === "down"
          ? "No jobs yet: this gateway cannot reach Redis (it retries)."
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

  // --- the jobs root (/healthz), looked at only while the list is empty ----------------------

  let health = null; // the latest answer of /healthz
  let healthTimer = null;
  let healthBusy = false;

  function rootMissing() {
    // `root: "missing"` from issue 9 on; `root_present: false` from sidecars before it.
    return field(health, "root") === "missing" || field(health, "root_present") === false;
  }

  function watchHealth() {
    const wanted = listReady && currentJob() === null && jobs.size === 0;
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

  // --- the job view --------------------------------------------------------------------------

  // Each fact of a job's view: its key, its label, and what it shows (text, or a list of text
  // and elements: a job's own text inside is isolated, so that right-to-left text or a bidi
  // control in it cannot reorder what follows).
  const FIELDS = [
    ["status", "Status", (s) => fmt.text(field(s, "status"))],
    ["progress", "Progress", (s) => fmt.percent(field(s, "progress"))],
    ["epoch", "Epoch", (s) => fmt.epoch(s)],
    ["step", "Step", (s) => fmt.step(s)],
    ["loss", "Loss", (s) => fmt.number(field(s, "loss"))],
    ["eval_loss", "Eval loss", (s) => fmt.number(field(s, "eval_loss"))],
    ["final_loss", "Final loss", (s) => fmt.number(field(s, "final_loss"))],
    ["learning_rate", "Learning rate", (s) => fmt.number(field(s, "learning_rate"), 3)],
    ["samples_per_second", "Samples/s", (s) => fmt.number(field(s, "samples_per_second"), 4)],
    ["eta", "ETA", (s) => fmt.eta(s)],
    ["gpu_memory", "GPU memory (allocated / used / total GB)", (s) =>
      ["gpu_memory_allocated_gb", "gpu_memory_used_gb", "gpu_memory_total_gb"].map((key) => fmt.number(field(s, key), 3)).join(" / ")],
    ["gpu_util", "GPU utilisation", (s) => (fmt.isNumber(field(s, "gpu_utilization_percent")) ? `${field(s, "gpu_utilization_percent")} %` : "–")],
    ["started", "Started", (s) => fmt.time(field(s, "started_at"))],
    ["updated", "Updated", (s) => fmt.time(field(s, "timestamp"))],
    ["node", "Node", (s) => fmt.text(field(s, "node"))],
    ["host", "Host / pid", (s) => host(field(s, "hostname"), field(s, "pid"))],
  ];

  function host(hostname, pid) {
    if (typeof hostname !== "string" || hostname === "") return "–";
    return [isolated(fmt.text(hostname, fmt.TEXT.name)), ` / ${fmt.isNumber(pid) ? pid : "?"}`];
  }

  let client = null;
  let clientStatus = "";
  let waitingForJob = false; // the view says "no job named ..." and waits for it in the list
  const chart = new LossChart($("chart"));

  function currentJob() {
    const match = location.hash.match(/^#job=(.+)$/);
    if (!match) return null;
    try {
      return decodeURIComponent(match[1]);
    } catch (error) {
      return match[1]; // a malformed escape: shown as it is, and refused as an invalid id
    }
  }

  function stopClient() {
    if (client) client.stop();
    client = null;
    clientStatus = "";
    waitingForJob = false;
  }

  function showJob(id) {
    stopClient();
    $("jobs-view").hidden = true;
    $("job-view").hidden = false;
    $("job-title").textContent = id;
    document.title = `${id} · progress-sidecar`;
    if (!JOB_ID.test(id)) showProblem(invalidIdText(id));
    else if (listReady && !jobs.has(id)) showMissing(id);
    else followJob(id);
    watchHealth();
    $("back").focus();
  }

  function invalidIdText(id) {
    return `“${id}” is not a valid job id: a job id is 1 to 128 letters, digits, ".", "_" or "-", and starts with a letter or digit.`;
  }

  function showProblem(text) {
    stopClient();
    $("job-live").hidden = true;
    $("job-problem").hidden = false;
    $("job-problem-text").textContent = text;
    setConnection("", "");
  }

  /** No such job (yet): say so, and follow it as soon as the jobs list has it. */
  function showMissing(id) {
    showProblem(`No job named ${id} under this sidecar. This page shows it as soon as it appears.`);
    waitingForJob = true;
    setConnection("waiting for the job", "");
  }

  function followJob(id) {
    $("job-problem").hidden = true;
    $("job-live").hidden = false;
    $("job-fields").replaceChildren();
    $("job-alert").hidden = true;
    $("job-progress").value = 0;
    $("job-progress").className = "";
    $("job-progress-text").textContent = "";
    drawChart(() => chart.clear());
    const own = new ProgressClient({
      url: location.origin,
      jobId: id,
      token,
      onState: (state) => client === own && renderJob(state),
      onLog: (entries, reset) => client === own && drawChart(() => chart.add(entries, reset)),
      onStatus: (status) => client === own && showClientStatus(status),
    });
    client = own;
    client.start();
  }

  function showClientStatus(status) {
    clientStatus = status;
    if (status === "complete") {
      setConnection(fmt.text(field(client.state, "status"), fmt.TEXT.badge), outcome(client.state));
    } else if (status === "error: invalid job id") {
      showProblem(invalidIdText(currentJob()));
    } else if (status === "polling" && jobIsGone()) {
      // Now, before the client's first GET /api/jobs/{id}: a 404 on the console otherwise.
      showMissing(currentJob());
    } else {
      setConnection(status, status === "live" ? "live" : status.startsWith("error") ? "down" : "");
      // A 4404 (or a lost connection): once the client is between two tries, ask the list.
      if (status === "reconnecting") setTimeout(followListInJobView);
    }
  }

  /** The followed job's stream failed, and the jobs list (complete) has no such job. */
  function jobIsGone() {
    const id = currentJob();
    const retrying = clientStatus === "reconnecting" || clientStatus === "polling";
    return client !== null && retrying && listReady && !jobs.has(id);
  }

  function followListInJobView() {
    const id = currentJob();
    if (id === null) return;
    if (waitingForJob && jobs.has(id)) followJob(id);
    else if (jobIsGone()) showMissing(id);
  }

  function showList() {
    stopClient();
    $("job-view").hidden = true;
    $("jobs-view").hidden = false;
    document.title = "progress-sidecar";
    const open = listSocket && listSocket.readyState === WebSocket.OPEN;
    setConnection(open ? "live" : "connecting…", open ? "live" : "");
    renderList();
  }

  function renderJob(state) {
    guard("this job's facts", () => $("job-fields").replaceChildren(...FIELDS.map((item) => fact(state, ...item))));
    guard("this job's progress", () => {
      const progress = field(state, "progress");
      $("job-progress").value = fmt.bar(progress);
      $("job-progress").className = outcome(state);
      $("job-progress-text").textContent = progress === undefined ? "0.0 %" : fmt.percent(progress);
    });
    guard("this job's alert", () => renderAlert(state));
  }

  /** One fact of the job's view; a placeholder, should showing it throw. */
  function fact(state, key, label, show) {
    const item = document.createElement("div");
    item.dataset.field = key;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    try {
      dd.append(...[show(state)].flat());
    } catch (error) {
      report(`the ${label} of this job`, error);
      dd.replaceChildren("–");
      dd.className = "unrenderable";
      dd.title = "this cannot be shown";
    }
    item.append(dt, dd);
    return item;
  }

  function renderAlert(state) {
    const alert = $("job-alert");
    const ended = outcome(state);
    const failed = ended === "bad" || ended === "ended";
    const parts = [];
    if (failed) {
      parts.push(isolated(fmt.text(field(state, "status"), fmt.TEXT.badge)));
      const error = fmt.text(field(state, "error"), fmt.TEXT.error, "");
      if (error) parts.push(": ", isolated(error));
    } else if (field(state, "stalled") === true) {
      parts.push("stalled: ", isolated(fmt.text(field(state, "stall_reason"), fmt.TEXT.field, "no recent update")));
    }
    const readError = fmt.text(field(state, "read_error"), fmt.TEXT.error, "");
    if (readError) {
      if (parts.length) parts.push("\n");
      parts.push("progress file unreadable: ", isolated(readError), " (showing the last good state)");
    }
    alert.hidden = parts.length === 0;
    alert.replaceChildren(...parts);
    alert.className = failed ? ended : "warn";
  }

  // --- the loss chart (loss-chart.js) --------------------------------------------------------

  function drawChart(draw) {
    guard("the loss chart", draw);
  }

  window.addEventListener("resize", () => drawChart(() => chart.resize()));

  function route() {
    const id = currentJob();
    if (id === null) showList();
    else showJob(id);
  }

  window.addEventListener("hashchange", route);
  connectList();
  route();
})();
