/*
 * A chart's controls: which metrics it draws (checkboxes, or one choice in a list), a log scale
 * for y, and smoothing (0 to 0.99). The choice persists in localStorage and may ride in the
 * address's hash after the view's own part: `#job=ID&metrics=loss,grad_norm&log=1&smooth=0.6`
 * (the compare view's: `metric=loss`). Keys come from jobs: shown as text, cut short.
 */
(function (root) {
  "use strict";

  const { field, text, TEXT } = root.DashboardFormat;
  const { decode } = root.DashboardPage;
  const MAX_SMOOTH = 0.99;
  // Characters of a key the address or the storage may name, and keys offered: keys longer are
  // not offered, so that what is picked survives a reload and a copied link.
  const { MAX_KEY, MAX_OFFERED: MAX_KEYS } = root.MetricHistory;

  const smoothing = (value) => Math.min(MAX_SMOOTH, Math.max(0, Math.round(value * 100) / 100));

  function keysOf(value, multiple) {
    if (!Array.isArray(value)) return null;
    const keys = value.filter((key) => typeof key === "string" && key !== "" && key.length <= MAX_KEY);
    return [...new Set(keys)].slice(0, multiple ? MAX_KEYS : 1);
  }

  /** Settings from anything (the storage's JSON, the hash's values): each checked, else the default's. */
  function settingsOf(value, defaults, multiple) {
    const metrics = keysOf(field(value, "metrics"), multiple);
    const log = field(value, "log");
    const smooth = field(value, "smooth");
    return {
      metrics: metrics !== null && (multiple || metrics.length) ? metrics : [...defaults.metrics],
      log: typeof log === "boolean" ? log : defaults.log,
      smooth: typeof smooth === "number" && Number.isFinite(smooth) ? smoothing(smooth) : defaults.smooth,
    };
  }

  /** What the hash says past its first parameter (the view's), read by hand: URLSearchParams
   * would turn an escaped "," inside a key into a separator. */
  function fromHash(hash, name) {
    const found = {};
    for (const part of hash.replace(/^#/, "").split("&").slice(1)) {
      const at = part.indexOf("=");
      const [key, value] = at < 0 ? [part, ""] : [part.slice(0, at), part.slice(at + 1)];
      if (key === name) found.metrics = value === "" ? [] : value.split(",").map(decode);
      else if (key === "log") found.log = value === "1";
      else if (key === "smooth" && value !== "" && Number.isFinite(Number(value))) found.smooth = Number(value);
    }
    return found;
  }

  function load(storageKey) {
    try {
      return JSON.parse(root.localStorage.getItem(storageKey) || "null");
    } catch (error) {
      return null; // no storage (refused, private mode) or not JSON: the defaults
    }
  }

  function save(storageKey, settings) {
    try {
      root.localStorage.setItem(storageKey, JSON.stringify(settings));
    } catch (error) {
      // no storage: the choice lasts as long as the page
    }
  }

  function element(tag, props, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  }

  /**
   * The controls of one chart, made in `container`.
   *
   * Args:
   *   container: where the controls go.
   *   prefix: the start of their element ids (`${prefix}-log`, `${prefix}-smooth`...).
   *   multiple: checkboxes for several metrics, else a list to choose one.
   *   storageKey: the localStorage key of the choice.
   *   defaults: {metrics, log, smooth} before any choice.
   *   onChange: called with the settings after each change by the user.
   */
  function create({ container, prefix, multiple, storageKey, defaults, onChange }) {
    const param = multiple ? "metrics" : "metric";
    let settings = settingsOf(load(storageKey), defaults, multiple);
    let found = [];
    let offered = null; // the keys the picker lists now

    const picker = multiple
      ? element("fieldset", { id: `${prefix}-metrics`, className: "metric-picker" }, element("legend", { textContent: "Draw" }))
      : element("select", { id: `${prefix}-metric` });
    const log = element("input", { type: "checkbox", id: `${prefix}-log` });
    const smooth = element("input", { type: "range", id: `${prefix}-smooth`, min: "0", max: String(MAX_SMOOTH), step: "0.01" });
    const smoothText = element("output", { id: `${prefix}-smooth-value` });
    container.replaceChildren(
      multiple ? picker : element("label", { className: "metric-choice" }, "Metric ", picker),
      element("label", { className: "log-toggle" }, log, " Log scale"),
      element("label", { className: "smoothing" }, "Smoothing ", smooth, smoothText),
    );

    function changed() {
      save(storageKey, settings);
      onChange(current());
    }

    picker.addEventListener("change", (event) => {
      const input = event.target;
      if (!multiple) settings.metrics = [picker.value];
      else if (input.checked) settings.metrics = [...settings.metrics.filter((key) => key !== input.value), input.value];
      else settings.metrics = settings.metrics.filter((key) => key !== input.value);
      changed();
    });
    log.addEventListener("change", () => {
      settings.log = log.checked;
      changed();
    });
    smooth.addEventListener("input", () => {
      settings.smooth = smoothing(Number(smooth.value));
      smoothText.textContent = settings.smooth.toFixed(2);
      changed();
    });

    function option(key) {
      const title = text(key, TEXT.title);
      if (!multiple) return element("option", { value: key, textContent: text(key, TEXT.badge), title });
      const box = element("input", { type: "checkbox", value: key, checked: settings.metrics.includes(key) });
      return element("label", { title }, box, ` ${text(key, TEXT.badge)}`);
    }

    /** The picker lists the keys found, and the chosen ones not found (yet); one it listed
     * stays (unchecking a key the data lacks does not pull the box from under the pointer). */
    function renderPicker() {
      const keys = [...new Set([...(offered || []), ...found, ...settings.metrics])];
      if (offered && keys.length === offered.length && keys.every((key, i) => key === offered[i])) return;
      const focused = picker.contains(document.activeElement) ? document.activeElement.value : null;
      offered = keys;
      picker.replaceChildren(...(multiple ? [picker.firstChild] : []), ...keys.map(option));
      if (!multiple) picker.value = settings.metrics[0] ?? "";
      const again = [...picker.querySelectorAll("input")].find((input) => input.value === focused);
      if (again) again.focus();
    }

    function renderAll() {
      offered = null;
      renderPicker();
      log.checked = settings.log;
      smooth.value = String(settings.smooth);
      smoothText.textContent = settings.smooth.toFixed(2);
    }

    function current() {
      return { metrics: [...settings.metrics], log: settings.log, smooth: settings.smooth };
    }

    return {
      settings: current,
      /** The keys the data holds now (in the order they appeared). */
      setKeys(keys) {
        found = keys.filter((key) => key.length <= MAX_KEY).slice(0, MAX_KEYS);
        renderPicker();
      },
      /** Take the stored choice, and over it what the hash names (the address wins). */
      applyHash(hash) {
        const stored = settingsOf(load(storageKey), defaults, multiple);
        settings = settingsOf({ ...stored, ...fromHash(hash, param) }, stored, multiple);
        renderAll();
      },
      /** The settings as the hash carries them, after the view's own part. */
      hashPart() {
        const keys = settings.metrics.map(encodeURIComponent).join(",");
        return `${param}=${keys}&log=${settings.log ? 1 : 0}&smooth=${settings.smooth}`;
      },
    };
  }

  root.ChartControls = { create, fromHash };
})(window);
