/*
 * A chart of metrics by step (uPlot), for the job view (several metrics of one job) and the
 * compare view (one metric of several jobs). It takes series already read (metric-history.js):
 * on a log scale it leaves non-positive values out; smoothed, it draws the smoothed line with
 * the raw one faint behind it. Axes and grid take the page's colours (dashboard.css' custom
 * properties), again whenever the system's light or dark mode changes. The chart element
 * carries what the canvas holds only as pixels: data-points, data-x-ticks, data-y-ticks and
 * data-latest (each series' latest drawn value, as JSON [[key, value], ...]).
 */
(function (root) {
  "use strict";

  const { number, tick } = root.DashboardFormat;
  const { smoothed } = root.MetricHistory;
  const HEIGHT = 280;
  /** The least value a log scale shows (uPlot's log splits fail far below; 0 and negatives have
   * no logarithm): smaller ones are left out of a log chart. */
  const LOG_FLOOR = 1e-20;
  const DARK = "(prefers-color-scheme: dark)";

  /** One colour per series: ten that tell apart on a light and on a dark background alike. */
  const PALETTE = [
    "#3b82f6", "#f97316", "#10b981", "#ef4444", "#8b5cf6",
    "#eab308", "#06b6d4", "#ec4899", "#84cc16", "#a8764a",
  ];

  /** Tick spacings of 1, 2 and 5 times a power of ten: steps from 1 (whole steps), values
   * from 1e-20 up to past the largest value a chart takes (1e100). */
  function incrs(fromPower, toPower) {
    const list = [];
    for (let power = fromPower; power <= toPower; power++) {
      for (const m of [1, 2, 5]) list.push(Number(`${m}e${power}`));
    }
    return list;
  }
  const STEP_INCRS = incrs(0, 16);
  const VALUE_INCRS = incrs(-20, 101);

  /** A custom property of the page (a colour of dashboard.css), as it is now. */
  function cssColour(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "gray";
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

  /** One step: whole steps around it (uPlot would span 0 to twice the step); else as given. */
  function stepRange(u, min, max) {
    const steps = u.data[0];
    if (steps.length === 0) return [0, 10];
    if (steps.length > 1) return [min, max];
    const pad = Math.max(1, Math.round(Math.abs(steps[0]) * 0.1));
    return steps[0] >= 0 && steps[0] < pad ? [0, 2 * pad] : [steps[0] - pad, steps[0] + pad];
  }

  function isPowerOfTen(value) {
    if (!(value > 0)) return false;
    const power = Math.log10(value);
    return Math.abs(power - Math.round(power)) < 1e-9;
  }

  function powerLabel(value) {
    const power = Math.round(Math.log10(value));
    return power >= -4 && power <= 5 ? String(10 ** power) : `1e${power}`;
  }

  const legendValue = (u, value) => (value === null || value === undefined ? "–" : number(value));

  /** What the chart draws: the steps where a series has a value (log: a positive one), each
   * series smoothed, the raw values (when smoothed) and the values' extent. */
  function prepare({ steps, series, log, smooth }) {
    const shown = series.map((s) => s.values.map((v) => (v === null || (log && !(v >= LOG_FLOOR)) ? null : v)));
    const keep = steps.map((_, i) => shown.some((values) => values[i] !== null));
    const pick = (values) => values.filter((_, i) => keep[i]);
    const raw = shown.map(pick);
    const drawn = raw.map((values) => smoothed(values, smooth));
    let min = Infinity;
    let max = -Infinity;
    for (const values of [...raw, ...drawn]) {
      for (const v of values) {
        if (v === null) continue;
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
    }
    return {
      data: [pick(steps), ...drawn],
      raw: smooth > 0 ? [null, ...raw] : null,
      extent: min <= max ? [min, max] : null,
    };
  }

  class MetricChart {
    /**
     * Args:
     *   element: where the chart goes.
     *   legend: uPlot's legend under the chart (else the caller shows one, from onValues).
     *   onValues: called with each series' value under the cursor, or its latest off the chart.
     */
    constructor(element, { legend = true, onValues = null } = {}) {
      this.element = element;
      this.legend = legend;
      this.onValues = onValues;
      this.plot = null;
      this.shape = "";
      this.input = { steps: [], series: [], log: false, smooth: 0 };
      this.raw = null;
      this.extent = null;
      const dark = typeof root.matchMedia === "function" ? root.matchMedia(DARK) : null;
      if (dark) dark.addEventListener("change", () => root.DashboardPage.guard("the chart", () => this.redraw()));
    }

    /**
     * Draw these series (what a second call changes is redrawn; a new set of series, a new chart).
     *
     * Args:
     *   input: {steps, series: [{key, label, color, values}], log, smooth, yLabel}; each
     *     series' values go with steps (null: none at that step); yLabel: the y axis' name (by
     *     default the one series' label).
     */
    draw(input) {
      this.input = input;
      this.render();
    }

    clear() {
      this.draw({ ...this.input, steps: [], series: [] });
    }

    /** A new chart for the same series (the page's colours changed). */
    redraw() {
      this.discard();
      this.render();
    }

    width() {
      return Math.max(200, this.element.clientWidth - 16);
    }

    /** Should uPlot throw, the chart is dropped (the next draw makes a new one) and the error
     * goes on to the caller. */
    render() {
      const { data, raw, extent } = prepare(this.input);
      this.raw = raw;
      this.extent = extent;
      this.element.dataset.points = String(data[0].length);
      const latest = this.input.series.map((s, i) => [s.key, data[i + 1][lastIndex(data[i + 1])] ?? null]);
      this.element.dataset.latest = JSON.stringify(latest);
      const { series, log, yLabel } = this.input;
      const shape = JSON.stringify([series.map((s) => [s.label, s.color]), log, yLabel ?? null]);
      try {
        if (this.plot && shape !== this.shape) this.discard();
        if (!this.plot) {
          this.plot = new uPlot(this.options(), data, this.element);
          this.shape = shape;
        } else {
          if (this.plot.width !== this.width()) this.plot.setSize({ width: this.width(), height: HEIGHT });
          this.plot.setData(data);
        }
        if (this.legend) showLatest(this.plot);
        this.tellValues(this.plot);
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

    tellValues(u) {
      if (!this.onValues) return;
      const idx = u.cursor.idx;
      const at = (values) => (idx !== null && idx !== undefined ? values[idx] : values[lastIndex(values)]);
      this.onValues(u.data.slice(1).map((values) => at(values) ?? null));
    }

    /** Tick labels, also kept on the chart element; on a log scale, powers of ten only. */
    tickLabels(name, log) {
      return (u, splits, axis, space, incr) => {
        const labels = splits.map((v) => (log ? (isPowerOfTen(v) ? powerLabel(v) : "") : tick(v, incr)));
        this.element.dataset[name] = labels.filter((label) => label !== "").join(" ");
        return labels;
      };
    }

    /** The y range: around the values drawn and raw; on a log scale, whole powers of ten. */
    valueRange(log) {
      return () => {
        const extent = this.extent;
        if (log) {
          if (!extent) return [1, 10];
          let low = 10 ** Math.floor(Math.log10(extent[0]));
          let high = 10 ** Math.ceil(Math.log10(extent[1]));
          if (low === high) [low, high] = [low / 10, high * 10];
          return [low, high];
        }
        if (!extent) return [0, 1];
        const [min, max] = extent;
        if (min !== max) return uPlot.rangeNum(min, max, 0.1, true);
        const pad = Math.abs(min) * 0.1 || 1;
        return [min - pad, max + pad];
      };
    }

    /** The raw lines, faint, under the smoothed ones (uPlot's drawClear: before axes and series). */
    drawRaw(u) {
      const raw = this.raw;
      if (!raw || raw.length !== u.series.length) return;
      const { ctx } = u;
      const { left, top, width, height } = u.bbox;
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, width, height);
      ctx.clip();
      ctx.globalAlpha = 0.3;
      ctx.lineWidth = Math.max(1, root.devicePixelRatio || 1);
      for (let i = 1; i < raw.length; i++) {
        if (!u.series[i].show) continue;
        ctx.strokeStyle = this.input.series[i - 1].color;
        ctx.beginPath();
        let started = false;
        raw[i].forEach((v, j) => {
          if (v === null) return;
          const x = u.valToPos(u.data[0][j], "x", true);
          const y = u.valToPos(v, "y", true);
          if (started) ctx.lineTo(x, y);
          else ctx.moveTo(x, y);
          started = true;
        });
        ctx.stroke();
      }
      ctx.restore();
    }

    options() {
      const { series, log } = this.input;
      const yLabel = this.input.yLabel ?? (series.length === 1 ? series[0].label : undefined);
      const muted = cssColour("--muted");
      const grid = { stroke: cssColour("--line"), width: 1 };
      // A log axis has a split at every 2..9 of each decade: lines at powers of ten only.
      const logGrid = { ...grid, filter: (u, splits) => splits.map((v) => (isPowerOfTen(v) ? v : null)) };
      // Room for the longest label (uPlot's default cuts long ones short).
      const size = (u, values) => Math.max(40, 14 + 7 * Math.max(0, ...(values || []).map((v) => String(v).length)));
      return {
        width: this.width(),
        height: HEIGHT,
        legend: { show: this.legend },
        scales: {
          x: { time: false, range: stepRange },
          y: log ? { distr: 3, log: 10, range: this.valueRange(true) } : { range: this.valueRange(false) },
        },
        axes: [
          { label: "step", stroke: muted, grid, ticks: grid, incrs: STEP_INCRS, values: this.tickLabels("xTicks", false) },
          Object.assign(
            { stroke: muted, grid: log ? logGrid : grid, ticks: log ? logGrid : grid, size, values: this.tickLabels("yTicks", log) },
            yLabel !== undefined ? { label: yLabel } : {},
            log ? {} : { incrs: VALUE_INCRS },
          ),
        ],
        series: [
          { label: "step", value: (u, value) => (value === null || value === undefined ? "–" : String(value)) },
          ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: true, value: legendValue })),
        ],
        hooks: {
          drawClear: [(u) => this.drawRaw(u)],
          setLegend: this.legend ? [showLatest] : [],
          setCursor: [(u) => this.tellValues(u)],
        },
      };
    }
  }

  MetricChart.PALETTE = PALETTE;
  root.MetricChart = MetricChart;
})(window);
