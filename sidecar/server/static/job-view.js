/*
 * The dashboard's job view (#job=<id>): one job followed live by progress-client.js, its facts,
 * progress bar, alert, metrics chart (job-chart.js) and its share and export buttons
 * (job-export.js); or why it cannot be (an invalid id, no such job yet: shown as soon as the jobs
 * list has it). Every value goes through dashboard-format.js. The chart's choice rides in the
 * hash after the id (`#job=ID&metrics=...`), written without a new history entry.
 */
(function (root) {
  "use strict";

  const { token, $, report, guard, isolated, setConnection, currentJob } = root.DashboardPage;
  const fmt = root.DashboardFormat;
  const { field } = fmt;
  const outcome = fmt.outcome;

  // Each fact of a job's view: its key, its label, what it shows (text, or a list of text and
  // elements: a job's own text inside is isolated, so that right-to-left text or a bidi control
  // in it cannot reorder what follows), and what its value's title says, if anything.
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
    ["gpu_memory", "GPU memory (GB)", (s) =>
      ["gpu_memory_allocated_gb", "gpu_memory_used_gb", "gpu_memory_total_gb"].map((key) => fmt.number(field(s, key), 3)).join(" / "),
      "allocated / used / total, GB"],
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

  function invalidIdText(id) {
    return `“${id}” is not a valid job id: a job id is 1 to 128 letters, digits, ".", "_" or "-", and starts with a letter or digit.`;
  }

  /**
   * The job view of this page (one per page).
   *
   * Args:
   *   list: the page's jobs list (jobs-list.js), which says whether a job exists.
   *   isJobId: whether a string is a valid job id (else the view says so, and asks nothing).
   */
  function create({ list, isJobId }) {
    let client = null;
    let clientStatus = "";
    let waitingForJob = false; // the view says "no job named ..." and waits for it in the list
    const chart = root.JobChart.create({ onSettings: () => rewriteHash() });
    const share = root.JobExport.create({ beforeCopy: () => rewriteHash() });

    /** The address names the chart's choice too (a copied link shows the same chart). */
    function rewriteHash() {
      const id = currentJob();
      if (id === null) return;
      const hash = `#job=${encodeURIComponent(id)}&${chart.hashPart()}`;
      if (location.hash !== hash) history.replaceState(history.state, "", hash);
    }

    function stopClient() {
      if (client) client.stop();
      client = null;
      clientStatus = "";
      waitingForJob = false;
    }

    function showJob(id) {
      stopClient();
      $("job-view").hidden = false;
      $("job-title").textContent = id;
      document.title = `${id} · progress-sidecar`;
      if (!isJobId(id)) showProblem(invalidIdText(id));
      else if (list.ready && !list.has(id)) showMissing(id);
      else followJob(id);
      list.watchHealth();
      // The heading (tabindex -1, no ring): a screen reader starts from the job's name.
      $("job-title").focus();
    }

    function hide() {
      stopClient();
      $("job-view").hidden = true;
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
      stopClient(); // one client at a time (a job waited for is followed once it appears)
      $("job-problem").hidden = true;
      $("job-live").hidden = false;
      $("job-fields").replaceChildren();
      $("job-alert").hidden = true;
      $("job-progress").value = 0;
      $("job-progress").className = "";
      $("job-progress-text").textContent = "";
      chart.open(location.hash);
      share.reset();
      const own = new ProgressClient({
        url: location.origin,
        jobId: id,
        token,
        onState: (state) => client === own && renderJob(state),
        onLog: (entries, reset) => client === own && chart.add(entries, reset),
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
        if (status === "reconnecting") setTimeout(followList);
      }
    }

    /** The followed job's stream failed, and the jobs list (complete) has no such job. */
    function jobIsGone() {
      const id = currentJob();
      const retrying = clientStatus === "reconnecting" || clientStatus === "polling";
      return client !== null && retrying && list.ready && !list.has(id);
    }

    /** What the jobs list now says about the job shown: there at last, or gone. */
    function followList() {
      const id = currentJob();
      if (id === null) return;
      if (waitingForJob && list.has(id)) followJob(id);
      else if (jobIsGone()) showMissing(id);
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

    window.addEventListener("resize", () => chart.resize());

    return { show: showJob, hide, followList };
  }

  /** One fact of the job's view; a placeholder, should showing it throw. */
  function fact(state, key, label, show, title) {
    const item = document.createElement("div");
    item.dataset.field = key;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    if (title) dd.title = title;
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

  root.JobView = { create };
})(window);
