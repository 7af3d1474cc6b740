/*
 * The dashboard's compare view (#compare=<id>,<id>...&metric=loss&log=1&smooth=0.6): one metric
 * of up to ten jobs on one chart (metric-chart.js), one colour each, live for those still
 * running (a ProgressClient per job). Under the chart, each job with its status and its value
 * (under the cursor, else its latest), linked to its own view. An invalid id, or one the jobs
 * list does not have, is named in a notice and skipped; a job that appears later joins then.
 */
(function (root) {
  "use strict";

  const { token, $, guard, isolated, setConnection, currentCompare, compareHash } = root.DashboardPage;
  const fmt = root.DashboardFormat;
  const { field, text, TEXT } = fmt;
  const { PALETTE } = root.MetricChart;
  const MAX_JOBS = PALETTE.length;
  const MAX_NAMED = 5; // invalid ids named in the notice; the rest counted
  const DEFAULTS = { metrics: ["loss"], log: false, smooth: 0 };
  const STORAGE_KEY = "progress-sidecar.compare-chart";
  const REDRAW_MS = 100; // ten jobs' logs in one draw

  function paragraph(...parts) {
    const p = document.createElement("p");
    p.append(...parts);
    return p;
  }

  /** The values of `key` in `history`, by step (those it has). */
  function valuesByStep(history, key) {
    const values = history.column(key);
    const byStep = new Map();
    history.steps().forEach((step, i) => values[i] !== null && byStep.set(step, values[i]));
    return byStep;
  }

  /**
   * The compare view of this page (one per page).
   *
   * Args:
   *   list: the page's jobs list (jobs-list.js), which says whether a job exists.
   *   isJobId: whether a string is a valid job id (else the view names it, and skips it).
   */
  function create({ list, isJobId }) {
    let runs = []; // the jobs shown: {id, colour, history, client, state, missing, item}
    let refused = []; // the ids that are no job id
    let beyond = 0; // the valid ids past MAX_JOBS
    let drawn = []; // the runs of the chart's series, in order
    let timer = null;
    const chart = new root.MetricChart($("compare-chart"), { legend: false, onValues: showValues });
    const controls = root.ChartControls.create({
      container: $("compare-controls"),
      prefix: "compare",
      multiple: false,
      storageKey: STORAGE_KEY,
      defaults: DEFAULTS,
      onChange: () => {
        draw();
        rewriteHash();
      },
    });

    function show(ids) {
      stopAll();
      $("compare-view").hidden = false;
      document.title = "Compare runs · progress-sidecar";
      const valid = ids.filter(isJobId);
      refused = ids.filter((id) => !isJobId(id));
      beyond = Math.max(0, valid.length - MAX_JOBS);
      runs = valid.slice(0, MAX_JOBS).map((id, i) => ({
        id, colour: PALETTE[i], history: new root.MetricHistory(), client: null, state: null, missing: false, item: null,
      }));
      controls.applyHash(location.hash);
      follow();
      render();
      $("compare-title").focus();
    }

    function hide() {
      stopAll();
      runs = [];
      $("compare-view").hidden = true;
    }

    function stopAll() {
      clearTimeout(timer);
      timer = null;
      runs.forEach(stop);
    }

    function stop(run) {
      if (run.client) run.client.stop();
      run.client = null;
    }

    function start(run) {
      run.history.clear();
      run.state = null;
      const own = new ProgressClient({
        url: location.origin,
        jobId: run.id,
        token,
        onState: (state) => {
          if (run.client !== own) return;
          run.state = state;
          guard("a compared job's status", () => renderItem(run));
        },
        onLog: (entries, reset) => {
          if (run.client !== own) return;
          run.history.add(entries, reset);
          schedule();
        },
        onStatus: (status) => {
          if (run.client !== own) return;
          showConnection();
          // Before the first GET of a job the list does not have (a 404 on the console otherwise).
          if (status === "polling") followList();
          else if (status === "reconnecting") setTimeout(followList);
        },
      });
      run.client = own;
      own.start();
    }

    /** Follow the jobs the list has, stop those it does not (none before the list is complete:
     * a client of a job that is not there would only retry). */
    function follow() {
      if (!list.ready) return false;
      let changed = false;
      for (const run of runs) {
        const known = list.has(run.id);
        if (known && run.client === null) {
          run.missing = false;
          start(run);
          changed = true;
        } else if (!known && !run.missing) {
          stop(run);
          run.history.clear();
          run.missing = true;
          changed = true;
        }
      }
      return changed;
    }

    /** What the jobs list now says: a job there at last, or gone. */
    function followList() {
      if ($("compare-view").hidden || currentCompare() === null) return;
      if (follow()) render();
      showConnection();
    }

    /** The header's line: live while one of the jobs is followed live. */
    function showConnection() {
      const modes = runs.filter((run) => run.client).map((run) => run.client.mode);
      if (modes.includes("live")) setConnection("live", "live");
      else if (modes.length && modes.every((mode) => mode === "complete")) setConnection("ended", "");
      else setConnection(modes.length ? "connecting…" : "", "");
    }

    function schedule() {
      if (timer === null) timer = setTimeout(draw, REDRAW_MS);
    }

    function render() {
      guard("the comparison's notice", renderNotice);
      guard("the comparison's legend", renderLegend);
      draw();
    }

    function draw() {
      clearTimeout(timer);
      timer = null;
      guard("the comparison chart", () => {
        const shown = runs.filter((run) => !run.missing);
        const keys = [...new Set(shown.flatMap((run) => run.history.keys))];
        controls.setKeys(keys);
        const { metrics, log, smooth } = controls.settings();
        const key = metrics[0];
        const columns = shown.map((run) => valuesByStep(run.history, key));
        const steps = [...new Set(columns.flatMap((byStep) => [...byStep.keys()]))].sort((a, b) => a - b);
        const series = shown.map((run, i) => ({
          key: run.id, label: run.id, color: run.colour, values: steps.map((step) => columns[i].get(step) ?? null),
        }));
        drawn = shown;
        chart.draw({ steps, series, log, smooth, yLabel: text(key, TEXT.badge) });
      });
    }

    function renderNotice() {
      const lines = refused.slice(0, MAX_NAMED).map((id) => paragraph("“", isolated(text(id, TEXT.name)), "” is not a valid job id: skipped."));
      if (refused.length > MAX_NAMED) lines.push(paragraph(`${refused.length - MAX_NAMED} more invalid ids: skipped.`));
      for (const run of runs.filter((r) => r.missing)) {
        lines.push(paragraph(`No job named ${run.id} under this sidecar: it joins the chart as soon as it appears.`));
      }
      if (beyond) lines.push(paragraph(`Only the first ${MAX_JOBS} jobs are shown: ${beyond} more are named.`));
      if (runs.length === 0) lines.push(paragraph("No job to compare: choose jobs in ", link("#", "the list of jobs"), "."));
      $("compare-notice").replaceChildren(...lines);
      $("compare-notice").hidden = lines.length === 0;
    }

    function link(href, content) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = content;
      return a;
    }

    function renderLegend() {
      const items = runs.filter((run) => !run.missing).map((run) => {
        const item = document.createElement("li");
        item.dataset.job = run.id;
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.backgroundColor = run.colour;
        const badge = document.createElement("span");
        badge.className = "badge";
        const value = document.createElement("span");
        value.className = "value";
        const name = link(`#job=${encodeURIComponent(run.id)}`, text(run.id, TEXT.badge));
        name.title = run.id;
        item.append(swatch, name, " ", badge, " ", value);
        run.item = item;
        renderItem(run);
        return item;
      });
      $("compare-legend").replaceChildren(...items);
    }

    function renderItem(run) {
      if (!run.item) return;
      const status = field(run.state, "status");
      run.item.className = fmt.statusClass(status);
      run.item.querySelector(".badge").textContent = run.state ? fmt.text(status, TEXT.badge) : "…";
    }

    /** Each job's value under the cursor (else its latest), after its name. */
    function showValues(values) {
      drawn.forEach((run, i) => {
        const value = run.item && run.item.querySelector(".value");
        if (value) value.textContent = fmt.number(values[i]);
      });
    }

    /** The address names the chart's choice too (a copied link shows the same chart). */
    function rewriteHash() {
      const ids = currentCompare();
      if (ids === null) return;
      const hash = `${compareHash(ids)}&${controls.hashPart()}`;
      if (location.hash !== hash) history.replaceState(history.state, "", hash);
    }

    window.addEventListener("resize", () => guard("the comparison chart", () => chart.resize()));

    return { show, hide, followList };
  }

  root.CompareView = { create };
})(window);
