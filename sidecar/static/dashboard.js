/* The dashboard: the jobs list (live from /ws/jobs) and a job view (progress-client.js). */
(function () {
  "use strict";

  const token = new URLSearchParams(location.search).get("token") || "";
  const protocols = token ? ["bearer", token] : [];
  const $ = (id) => document.getElementById(id);

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
  };

  function setConnection(text, kind) {
    const element = $("connection");
    element.textContent = text;
    element.className = kind || "";
  }

  // --- the jobs list -------------------------------------------------------------------------

  const jobs = new Map();
  let listSocket = null;
  let listFailures = 0;

  function connectList() {
    const url = new URL("/ws/jobs", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url, protocols);
    listSocket = ws;
    ws.onmessage = (event) => {
      listFailures = 0;
      const message = JSON.parse(event.data);
      if (message.type === "snapshot") jobs.clear();
      for (const [id, change] of Object.entries(message.jobs)) {
        if (change === null) jobs.delete(id);
        else jobs.set(id, ProgressClient.mergePatch(jobs.get(id) || {}, change));
      }
      if (currentJob() === null) setConnection("live", "live");
      renderList();
    };
    ws.onclose = (event) => {
      if (listSocket !== ws) return;
      if (event.code === 4401) {
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
    $("jobs-empty").hidden = ids.length > 0;
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
        bar.setAttribute("aria-label", `${id} progress`);
        progress.append(bar, ` ${typeof job.progress === "number" ? job.progress.toFixed(1) + " %" : "–"}`);
        cells.push(progress);
        for (const text of [fmt.step(job), fmt.number(job.loss), fmt.duration(job.complete ? undefined : job.eta_seconds), fmt.time(job.updated_at)]) {
          const cell = document.createElement("td");
          cell.className = "num";
          cell.textContent = text;
          cells.push(cell);
        }
        row.append(...cells);
        return row;
      }),
    );
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
    ["eta", "ETA", (s) => (s.complete ? "–" : fmt.duration(s.eta_seconds))],
    ["gpu_memory", "GPU memory (allocated / used / total GB)", (s) =>
      [s.gpu_memory_allocated_gb, s.gpu_memory_used_gb, s.gpu_memory_total_gb].map((v) => fmt.number(v, 3)).join(" / ")],
    ["gpu_util", "GPU utilisation", (s) => (typeof s.gpu_utilization_percent === "number" ? `${s.gpu_utilization_percent} %` : "–")],
    ["started", "Started", (s) => fmt.time(s.started_at)],
    ["updated", "Updated", (s) => fmt.time(s.timestamp)],
    ["host", "Host / pid", (s) => (s.hostname ? `${s.hostname} / ${s.pid ?? "?"}` : "–")],
  ];

  let client = null;
  let plot = null;
  let points = new Map(); // step -> [loss, eval_loss]

  function currentJob() {
    const match = location.hash.match(/^#job=(.+)$/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function showJob(id) {
    if (client) client.stop();
    $("jobs-view").hidden = true;
    $("job-view").hidden = false;
    $("job-title").textContent = id;
    document.title = `${id} · progress-sidecar`;
    $("job-fields").replaceChildren();
    $("job-alert").hidden = true;
    points = new Map();
    drawChart();
    client = new ProgressClient({
      url: location.origin,
      jobId: id,
      token,
      onState: renderJob,
      onLog: addEntries,
      onStatus: (status) => {
        const live = status === "live" || status === "complete";
        setConnection(status === "complete" ? "finished" : status, live ? "live" : status.startsWith("error") ? "down" : "");
      },
    });
    client.start();
    $("back").focus();
  }

  function showList() {
    if (client) client.stop();
    client = null;
    $("job-view").hidden = true;
    $("jobs-view").hidden = false;
    document.title = "progress-sidecar";
    setConnection(listSocket && listSocket.readyState === WebSocket.OPEN ? "live" : "connecting…", "live");
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
    $("job-progress-text").textContent = `${progress.toFixed(1)} %`;
    const alert = $("job-alert");
    const failed = ["failed", "error", "cancelled", "canceled", "stopped"].includes(String(state.status).toLowerCase());
    let text = "";
    if (failed) text = `${state.status}${state.error ? `: ${state.error}` : ""}`;
    else if (state.stalled) text = `stalled: ${state.stall_reason || "no recent update"}`;
    if (state.read_error) text += `${text ? "\n" : ""}progress file unreadable: ${state.read_error} (showing the last good state)`;
    alert.hidden = !text;
    alert.textContent = text;
    alert.className = failed ? "bad" : "warn";
  }

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

  function drawChart() {
    const element = $("chart");
    const data = chartData();
    element.dataset.points = String(data[0].length);
    const width = Math.max(280, element.clientWidth - 16);
    if (!plot) {
      plot = new uPlot(
        {
          width,
          height: 280,
          scales: { x: { time: false } },
          axes: [{ label: "step" }, { label: "loss" }],
          series: [
            { label: "step" },
            { label: "loss", stroke: "#2f6fde", width: 2, spanGaps: true },
            { label: "eval loss", stroke: "#c2410c", width: 2, spanGaps: true, points: { show: true } },
          ],
        },
        data,
        element,
      );
    } else {
      plot.setData(data);
    }
  }

  window.addEventListener("resize", () => {
    if (plot) plot.setSize({ width: Math.max(280, $("chart").clientWidth - 16), height: 280 });
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
