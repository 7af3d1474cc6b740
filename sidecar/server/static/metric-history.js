/*
 * A job's metrics history as charts take it: each step's numeric values by key, and the keys in
 * the order they first appeared. An entry is whatever a line of metrics.jsonl holds: it counts
 * only when its step is a number a chart can scale (finite, within ±2^53), and only with those
 * of its values that are too (finite, within ±1e100); anything else is left out. Steps come in
 * any order. Also the smoothing the charts offer (smoothed()).
 */
(function (root) {
  "use strict";

  const { field, isStep, isPlotValue } = root.DashboardFormat;

  /** The most keys one job's history keeps values of (a key first seen past these is left out;
   * the server's 32 KB line limit bounds a line's keys anyway). */
  const MAX_KEYS = 1000;
  /** The most keys a picker offers (the first found; a key the address names is offered too). */
  const MAX_OFFERED = 64;
  /** The longest key offered (an address or the storage names it whole). */
  const MAX_KEY = 200;
  /** What an entry holds besides its metrics: the x of every chart. */
  const STEP = "step";

  class MetricHistory {
    constructor() {
      this.clear();
    }

    clear() {
      this.rows = new Map(); // step -> Map(key -> value)
      this.keys = []; // the metrics found so far, in the order they appeared
      this.sorted = null; // the steps in order, until the next add
    }

    /** Take a batch of history entries; `reset`: they replace all earlier ones. */
    add(entries, reset) {
      if (reset) this.clear();
      for (const entry of Array.isArray(entries) ? entries : []) this.addEntry(entry);
      this.sorted = null;
    }

    addEntry(entry) {
      const step = field(entry, STEP);
      if (!isStep(step) || Array.isArray(entry)) return;
      let row = this.rows.get(step);
      for (const key of Object.keys(entry)) {
        const value = field(entry, key);
        if (key === STEP || !isPlotValue(value)) continue;
        if (!this.keys.includes(key)) {
          if (this.keys.length >= MAX_KEYS) continue;
          this.keys.push(key);
        }
        if (!row) this.rows.set(step, (row = new Map()));
        row.set(key, value);
      }
    }

    /** Every step that has a value, in order. */
    steps() {
      if (!this.sorted) this.sorted = [...this.rows.keys()].sort((a, b) => a - b);
      return this.sorted;
    }

    /** The values of `key` at each of steps() (null where that step has none). */
    column(key) {
      return this.steps().map((step) => {
        const row = this.rows.get(step);
        return row.has(key) ? row.get(key) : null;
      });
    }
  }

  /**
   * `values` smoothed by an exponential moving average, debiased as TensorBoard does it (the
   * first values are not pulled towards 0); nulls stay nulls and are skipped. A constant series
   * stays as it is (the debiasing would show rounding noise).
   *
   * Args:
   *   values: numbers or nulls.
   *   weight: 0 (none) to below 1 (the heaviest smoothing).
   */
  function smoothed(values, weight) {
    if (!(weight > 0 && weight < 1)) return values.slice();
    const present = values.filter((value) => value !== null);
    if (present.every((value) => value === present[0])) return values.slice();
    let last = 0;
    let count = 0;
    return values.map((value) => {
      if (value === null) return null;
      last = last * weight + (1 - weight) * value;
      count += 1;
      return last / (1 - weight ** count);
    });
  }

  root.MetricHistory = MetricHistory;
  root.MetricHistory.smoothed = smoothed;
  root.MetricHistory.MAX_KEYS = MAX_KEYS;
  root.MetricHistory.MAX_OFFERED = MAX_OFFERED;
  root.MetricHistory.MAX_KEY = MAX_KEY;
})(window);
