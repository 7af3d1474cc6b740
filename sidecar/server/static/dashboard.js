/* The dashboard: the jobs list (live from /ws/jobs) and a job view (progress-client.js). */
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

  const fmt = {
    number(value, digits = 4) {
      return typeof value === "number" ? Number(value.toPrecision(digits)).toString() : "–";
    },
    duration(seconds) {
      if (typeof seconds !== "number") return "–";
      const s = Math.max(0, Math.round(seconds));
      const h = Math.floor(s / 3600);
      const m = Math.floor((s % 3600) / 60);
      return `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
    },
    time(iso) {
      if (!iso) return "–";
      const date = new Date(iso);
      return isNaN(date) ? String(iso) : date.toLocaleTimeString();
    },
    step(state) {
      if (state.current_step === undefined) return "–";
      return state.total_steps !== undefined ? `${state.current_step} / ${state.total_steps}` : String(state.current_step);
    },
    // A stalled job's ETA is the one it had when it stopped moving: no longer true.
    eta(state) {
      if (state.complete) return "–";
      return state.stalled ? "stalled" : fmt.duration(state.eta_seconds);
    },
  };

  /** How a terminal status ended: "ok" (completed), "bad" (failed, error), "ended" (cancelled,
   * stopped); "" while the job runs. Badges and bars take it as their class. */
  function outcome(state) {
    if (!state || !state.complete) return "";
    const status = String(state.status).toLowerCase();
    if (status === "completed") return "ok";
    return status === "failed" || status === "error" ? "bad" : "ended";
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
      const message = JSON.parse(event.data);
      if (message.type === ProgressClient.MESSAGE.SNAPSHOT) {
        jobs.clear();
        listReady = true;
      }
      for (const [id, change] of Object.entries(message.jobs)) {
        if (change === null) jobs.delete(id);
        else jobs.set(id, ProgressClient.mergePatch(jobs.get(id) || {}, change));
      }
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
    element.title = why || "";
    return element;
  }

  function renderList() {
    const body = document.querySelector("#jobs tbody");
    const ids = [...jobs.keys()].sort();
    // An empty list says why once /healthz has: no root yet (a notice), or no job in it.
    const missingRoot = ids.length === 0 && rootMissing();
    const notice = $("jobs-root");
    notice.hidden = !missingRoot;
    notice.textContent = missingRoot ? `The jobs root ${health.root_path ?? health.root} does not exist (yet): the sidecar is waiting for it.` : "";
    $("jobs-empty").hidden = ids.length > 0 || missingRoot || health === null;
    if (health !== null && health.role === "gateway") {
      $("jobs-empty").textContent =
        health.bus === "down"
          ? "No jobs yet: this gateway cannot reach Redis (it retries)."
          : "No jobs on any node of the cluster yet.";
    }
    $("jobs-table").hidden = ids.length === 0;
    body.replaceChildren(
      ...ids.map((id) => {
        const job = jobs.get(id);
        const row = document.createElement("tr");
        row.dataset.job = id;
        row.className = `status-${String(job.status || "unknown").toLowerCase()}${job.stalled ? " stalled" : ""}`;
        const cells = [];
        const name = document.createElement("td");
        name.append(jobLink(id));
        cells.push(name);
        const node = document.createElement("td");
        const nodeName = document.createElement("span");
        nodeName.className = "node";
        nodeName.textContent = job.node || "–";
        if (job.node) nodeName.title = job.node; // a long name is cut short: whole on hover
        node.append(nodeName);
        cells.push(node);
        const status = document.createElement("td");
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = job.status || "?";
        status.append(badge);
        if (job.stalled) status.append(flag("stalled", job.stall_reason));
        if (job.read_error) status.append(flag("unreadable", job.read_error));
        cells.push(status);
        const progress = document.createElement("td");
        const bar = document.createElement("progress");
        bar.max = 100;
        bar.value = typeof job.progress === "number" ? job.progress : 0;
        bar.className = outcome(job);
        bar.setAttribute("aria-label", `${id} progress`);
        progress.append(bar, ` ${typeof job.progress === "number" ? job.progress.toFixed(1) + " %" : "–"}`);
        cells.push(progress);
        for (const text of [fmt.step(job), fmt.number(job.loss), fmt.eta(job), fmt.time(job.updated_at)]) {
          const cell = document.createElement("td");
          cell.className = "num";
          cell.textContent = text;
          cells.push(cell);
        }
        row.append(...cells);
        return row;
      }),
    );
    watchHealth();
  }

  // --- the jobs root (/healthz), looked at only while the list is empty ----------------------

  let health = null; // the latest answer of /healthz
  let healthTimer = null;
  let healthBusy = false;

  function rootMissing() {
    // `root: "missing"` from issue 9 on; `root_present: false` from sidecars before it.
    return health !== null && (health.root === "missing" || health.root_present === false);
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
      if (response.ok) health = await response.json();
    } catch (error) {
      // unreachable: the list's socket says so, and brings the next look when it is back
    } finally {
      healthBusy = false;
    }
    renderList();
  }

  // --- the job view --------------------------------------------------------------------------

  const FIELDS = [
    ["status", "Status", (s) => s.status || "–"],
    ["progress", "Progress", (s) => (typeof s.progress === "number" ? `${s.progress.toFixed(1)} %` : "–")],
    ["epoch", "Epoch", (s) => (s.current_epoch !== undefined ? `${s.current_epoch} / ${s.total_epochs ?? "?"}` : "–")],
    ["step", "Step", (s) => fmt.step(s)],
    ["loss", "Loss", (s) => fmt.number(s.loss)],
    ["eval_loss", "Eval loss", (s) => fmt.number(s.eval_loss)],
    ["final_loss", "Final loss", (s) => fmt.number(s.final_loss)],
    ["learning_rate", "Learning rate", (s) => fmt.number(s.learning_rate, 3)],
    ["samples_per_second", "Samples/s", (s) => fmt.number(s.samples_per_second, 4)],
    ["eta", "ETA", (s) => fmt.eta(s)],
    ["gpu_memory", "GPU memory (allocated / used / total GB)", (s) =>
      [s.gpu_memory_allocated_gb, s.gpu_memory_used_gb, s.gpu_memory_total_gb].map((v) => fmt.number(v, 3)).join(" / ")],
    ["gpu_util", "GPU utilisation", (s) => (typeof s.gpu_utilization_percent === "number" ? `${s.gpu_utilization_percent} %` : "–")],
    ["started", "Started", (s) => fmt.time(s.started_at)],
    ["updated", "Updated", (s) => fmt.time(s.timestamp)],
    ["node", "Node", (s) => s.node || "–"],
    ["host", "Host / pid", (s) => (s.hostname ? `${s.hostname} / ${s.pid ?? "?"}` : "–")],
  ];

  let client = null;
  let clientStatus = "";
  let waitingForJob = false; // the view says "no job named ..." and waits for it in the list
  let plot = null;
  let points = new Map(); // step -> [loss, eval_loss]

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
    points = new Map();
    drawChart();
    const own = new ProgressClient({
      url: location.origin,
      jobId: id,
      token,
      onState: (state) => client === own && renderJob(state),
      onLog: (entries, reset) => client === own && addEntries(entries, reset),
      onStatus: (status) => client === own && showClientStatus(status),
    });
    client = own;
    client.start();
  }

  function showClientStatus(status) {
    clientStatus = status;
    if (status === "complete") {
      setConnection(client.state.status, outcome(client.state));
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
    const dl = $("job-fields");
    dl.replaceChildren(
      ...FIELDS.map(([key, label, show]) => {
        const item = document.createElement("div");
        item.dataset.field = key;
        const dt = document.createElement("dt");
        dt.textContent = label;
        const dd = document.createElement("dd");
        dd.textContent = show(state);
        item.append(dt, dd);
        return item;
      }),
    );
    const progress = typeof state.progress === "number" ? state.progress : 0;
    $("job-progress").value = progress;
    $("job-progress").className = outcome(state);
    $("job-progress-text").textContent = `${progress.toFixed(1)} %`;
    const alert = $("job-alert");
    const ended = outcome(state);
    const failed = ended === "bad" || ended === "ended";
    let text = "";
    if (failed) text = `${state.status}${state.error ? `: ${state.error}` : ""}`;
    else if (state.stalled) text = `stalled: ${state.stall_reason || "no recent update"}`;
    if (state.read_error) text += `${text ? "\n" : ""}progress file unreadable: ${state.read_error} (showing the last good state)`;
    alert.hidden = !text;
    alert.textContent = text;
    alert.className = failed ? ended : "warn";
  }

  // --- the loss chart ------------------------------------------------------------------------

  function addEntries(entries, reset) {
    if (reset) points = new Map();
    for (const entry of entries) {
      if (typeof entry.step !== "number") continue;
      const point = points.get(entry.step) || [null, null];
      if (typeof entry.loss === "number") point[0] = entry.loss;
      if (typeof entry.eval_loss === "number") point[1] = entry.eval_loss;
      if (point[0] !== null || point[1] !== null) points.set(entry.step, point);
    }
    drawChart();
  }

  function chartData() {
    const steps = [...points.keys()].sort((a, b) => a - b);
    return [steps, steps.map((s) => points.get(s)[0]), steps.map((s) => points.get(s)[1])];
  }

  function lastIndex(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return i;
    return null;
  }

  /** Off the chart, the legend shows each series' latest value (uPlot shows "--" there). */
  function showLatest(u) {
    if (u.cursor.idx !== null && u.cursor.idx !== undefined) return;
    u.setLegend({ idxs: u.data.map(lastIndex) }, false);
  }

  // Steps are whole numbers: ticks every 1, 2, 5, 10... steps, never between two.
  const STEP_INCRS = [];
  for (let power = 1; power <= 1e12; power *= 10) STEP_INCRS.push(power, 2 * power, 5 * power);

  /** One step: whole steps around it (uPlot would span 0 to twice the step); else as given. */
  function stepRange(u, min, max) {
    const steps = u.data[0];
    if (steps.length === 0) return [0, 10];
    if (steps.length > 1) return [min, max];
    const pad = Math.max(1, Math.round(Math.abs(steps[0]) * 0.1));
    return steps[0] >= 0 && steps[0] < pad ? [0, 2 * pad] : [steps[0] - pad, steps[0] + pad];
  }

  function lossRange(u, min, max) {
    if (min === null || max === null) return [0, 1];
    if (min !== max) return uPlot.rangeNum(min, max, 0.1, true);
    const pad = Math.abs(min) * 0.1 || 1;
    return [min - pad, max + pad];
  }

  /** Tick labels, also kept on the chart element: the canvas holds them only as pixels. */
  function tickLabels(name) {
    return (u, splits, axis, space, incr) => {
      const decimals = Math.max(0, -Math.floor(Math.log10(incr)));
      const labels = splits.map((v) => (v === null ? "" : v.toFixed(decimals)));
      $("chart").dataset[name] = labels.join(" ");
      return labels;
    };
  }

  const legendValue = (u, value) => (value === null || value === undefined ? "–" : fmt.number(value));

  function chartWidth() {
    return Math.max(280, $("chart").clientWidth - 16);
  }

  function drawChart() {
    const element = $("chart");
    const data = chartData();
    element.dataset.points = String(data[0].length);
    if (!plot) {
      plot = new uPlot(
        {
          width: chartWidth(),
          height: 280,
          scales: { x: { time: false, range: stepRange }, y: { range: lossRange } },
          axes: [
            { label: "step", incrs: STEP_INCRS, values: tickLabels("xTicks") },
            { label: "loss", values: tickLabels("yTicks") },
          ],
          series: [
            { label: "step", value: (u, value) => (value === null || value === undefined ? "–" : String(value)) },
            { label: "loss", stroke: "#2f6fde", width: 2, spanGaps: true, value: legendValue },
            { label: "eval loss", stroke: "#c2410c", width: 2, spanGaps: true, points: { show: true }, value: legendValue },
          ],
          hooks: { setLegend: [showLatest] },
        },
        data,
        element,
      );
    } else {
      if (plot.width !== chartWidth()) plot.setSize({ width: chartWidth(), height: 280 });
      plot.setData(data);
    }
    showLatest(plot);
  }

  window.addEventListener("resize", () => {
    if (plot) plot.setSize({ width: chartWidth(), height: 280 });
  });

  function route() {
    const id = currentJob();
    if (id === null) showList();
    else showJob(id);
  }

  window.addEventListener("hashchange", route);
  connectList();
  route();
})();
