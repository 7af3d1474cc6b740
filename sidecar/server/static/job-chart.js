/*
 * The job view's chart: the job's metrics history (metric-history.js), drawn by metric-chart.js
 * with the metrics, scale and smoothing chosen in its controls (chart-controls.js): loss and
 * eval_loss until the user picks others. A metric keeps its colour while the job is shown.
 */
(function (root) {
  "use strict";

  const { $, guard } = root.DashboardPage;
  const { text, TEXT } = root.DashboardFormat;
  const { PALETTE } = root.MetricChart;
  const DEFAULTS = { metrics: ["loss", "eval_loss"], log: false, smooth: 0 };
  const STORAGE_KEY = "progress-sidecar.job-chart";

  /**
   * The chart of the job view (one per page).
   *
   * Args:
   *   onSettings: called after the user changed what the chart shows.
   */
  function create({ onSettings }) {
    const history = new root.MetricHistory();
    const chart = new root.MetricChart($("chart"));
    const colours = new Map();
    const controls = root.ChartControls.create({
      container: $("chart-controls"),
      prefix: "chart",
      multiple: true,
      storageKey: STORAGE_KEY,
      defaults: DEFAULTS,
      onChange: () => {
        draw();
        onSettings();
      },
    });

    function colour(key) {
      if (!colours.has(key)) colours.set(key, PALETTE[colours.size % PALETTE.length]);
      return colours.get(key);
    }

    function draw() {
      guard("the chart", () => {
        controls.setKeys(history.keys);
        const { metrics, log, smooth } = controls.settings();
        [...metrics, ...history.keys].forEach(colour);
        const series = metrics.map((key) => ({
          key, label: text(key, TEXT.badge), color: colour(key), values: history.column(key),
        }));
        chart.draw({ steps: history.steps(), series, log, smooth });
      });
    }

    return {
      /** A job is shown: no history yet, and the choice the address (or the storage) names. */
      open(hash) {
        history.clear();
        colours.clear();
        controls.applyHash(hash);
        draw();
      },
      /** Take a batch of history entries; `reset`: they replace all earlier ones. */
      add(entries, reset) {
        history.add(entries, reset);
        draw();
      },
      resize() {
        guard("the chart", () => chart.resize());
      },
      /** The choice as the address's hash carries it (after `#job=ID&`). */
      hashPart: () => controls.hashPart(),
    };
  }

  root.JobChart = { create };
})(window);
