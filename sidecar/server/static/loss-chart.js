/*
 * The job view's loss chart (uPlot): loss and eval loss by step, from the job's metrics history.
 * An entry is whatever a line of metrics.jsonl holds: it makes a point only when its step is a
 * number the chart can scale (finite, within ±2^53), with those of its loss and eval_loss that
 * are too (finite, within ±1e100); anything else is left out. Steps come in any order.
 */
(function (root) {
  "use strict";

  const { field, isStep, isPlotValue, number, tick } = root.DashboardFormat;
  const HEIGHT = 280;

  // Steps are whole numbers: ticks every 1, 2, 5, 10... steps, never between two.
  const STEP_INCRS = [];
  for (let power = 1; power <= 1e16; power *= 10) STEP_INCRS.push(power, 2 * power, 5 * power);

  function lastIndex(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return i;
    return null;
  }

  /** Off the chart, the legend shows each series' latest value (uPlot shows "--" there). */
  function showLatest(u) {
    if (u.cursor.idx !== null && u.cursor.idx !== undefined) return;
    u.setLegend({ idxs: u.data.map(lastIndex) }, false);
  }

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

  const legendValue = (u, value) => (value === null || value === undefined ? "–" : number(value));

  class LossChart {
    /** @param {HTMLElement} element where the chart goes; it carries data-points, data-x-ticks
     * and data-y-ticks (the canvas holds the labels only as pixels). */
    constructor(element) {
      this.element = element;
      this.points = new Map(); // step -> [loss, eval_loss]
      this.plot = null;
    }

    /** Take a batch of history entries; `reset`: they replace all earlier ones. */
    add(entries, reset) {
      if (reset) this.points = new Map();
      for (const entry of Array.isArray(entries) ? entries : []) {
        const step = field(entry, "step");
        if (!isStep(step)) continue;
        const point = this.points.get(step) || [null, null];
        const loss = field(entry, "loss");
        const evalLoss = field(entry, "eval_loss");
        if (isPlotValue(loss)) point[0] = loss;
        if (isPlotValue(evalLoss)) point[1] = evalLoss;
        if (point[0] !== null || point[1] !== null) this.points.set(step, point);
      }
      this.draw();
    }

    clear() {
      this.points = new Map();
      this.draw();
    }

    data() {
      const steps = [...this.points.keys()].sort((a, b) => a - b);
      return [steps, steps.map((s) => this.points.get(s)[0]), steps.map((s) => this.points.get(s)[1])];
    }

    width() {
      return Math.max(280, this.element.clientWidth - 16);
    }

    /** Draw the points held. Should uPlot throw, the chart is dropped (the next draw makes a
     * new one) and the error goes on to the caller. */
    draw() {
      const data = this.data();
      this.element.dataset.points = String(data[0].length);
      try {
        if (!this.plot) {
          this.plot = new uPlot(this.options(), data, this.element);
        } else {
          if (this.plot.width !== this.width()) this.plot.setSize({ width: this.width(), height: HEIGHT });
          this.plot.setData(data);
        }
        showLatest(this.plot);
      } catch (error) {
        this.discard();
        throw error;
      }
    }

    resize() {
      if (this.plot) this.plot.setSize({ width: this.width(), height: HEIGHT });
    }

    discard() {
      try {
        if (this.plot) this.plot.destroy();
      } finally {
        this.plot = null;
        this.element.querySelectorAll(".uplot").forEach((node) => node.remove());
      }
    }

    /** Tick labels, also kept on the chart element. */
    tickLabels(name) {
      return (u, splits, axis, space, incr) => {
        const labels = splits.map((v) => tick(v, incr));
        this.element.dataset[name] = labels.join(" ");
        return labels;
      };
    }

    options() {
      return {
        width: this.width(),
        height: HEIGHT,
        scales: { x: { time: false, range: stepRange }, y: { range: lossRange } },
        axes: [
          { label: "step", incrs: STEP_INCRS, values: this.tickLabels("xTicks") },
          { label: "loss", values: this.tickLabels("yTicks") },
        ],
        series: [
          { label: "step", value: (u, value) => (value === null || value === undefined ? "–" : String(value)) },
          { label: "loss", stroke: "#2f6fde", width: 2, spanGaps: true, value: legendValue },
          { label: "eval loss", stroke: "#c2410c", width: 2, spanGaps: true, points: { show: true }, value: legendValue },
        ],
        hooks: { setLegend: [showLatest] },
      };
    }
  }

  root.LossChart = LossChart;
})(window);
