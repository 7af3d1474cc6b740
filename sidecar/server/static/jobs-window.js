/*
 * The jobs list's window: a long list keeps in the table only the rows near the viewport, with a
 * spacer row above and below them as tall as the rows they stand for. A browser lays a table out
 * whole whenever one of its cells changes: with a thousand rows in it, 500 changing every second
 * would cost tens of ms per frame; with the window, the same for a hundred rows or so. A list of
 * up to WHOLE rows is in the table whole (the browser's find-in-page sees every job).
 */
(function (root) {
  "use strict";

  // The most rows a table holds whole; past it, the window.
  const WHOLE = 150;
  // Rows kept beyond each edge of the viewport, in viewport heights: a scroll shows rows that
  // are there already, the next frame moves the window.
  const OVERSCAN = 1;

  function spacer(columns) {
    const row = document.createElement("tr");
    row.className = "spacer";
    row.setAttribute("aria-hidden", "true");
    const cell = document.createElement("td");
    cell.colSpan = columns;
    row.append(cell);
    return row;
  }

  /**
   * The window of a table's body.
   *
   * Args:
   *   body: the table's tbody.
   *   columns: the table's columns (what a spacer spans).
   */
  function create(body, columns) {
    const above = spacer(columns);
    const below = spacer(columns);
    // A row's height, px, one line and two (a job with an error): as measured once shown.
    const heights = { plain: 41, tall: 60 };
    let view = { top: 0, height: 0 };
    const measured = new Set(); // the heights measured since the last resize
    addEventListener("resize", () => measured.clear());

    /** Reads where the table is in the viewport: first thing in a frame, before any change. */
    function look() {
      view = { top: body.getBoundingClientRect().top, height: innerHeight };
    }

    const heightOf = (row) => (row.tall ? heights.tall : heights.plain);

    function setHeight(row, px) {
      const value = `${Math.round(px)}px`;
      if (row.firstChild.style.height !== value) row.firstChild.style.height = value;
    }

    /** The elements the body holds for `rows` (each {el, tall}, in order): all of them, or
     * those near the viewport between two spacers. */
    function slice(rows) {
      if (rows.length <= WHOLE) return rows.map((row) => row.el);
      const from = -view.top - OVERSCAN * view.height;
      const to = -view.top + (1 + OVERSCAN) * view.height;
      let y = 0;
      let first = -1;
      let last = rows.length - 1;
      let top = 0;
      for (let i = 0; i < rows.length; i++) {
        const h = heightOf(rows[i]);
        if (first < 0 && y + h > from) {
          first = i;
          top = y;
        }
        if (first >= 0 && y > to && last === rows.length - 1) last = i - 1;
        y += h;
      }
      if (first < 0) first = Math.max(0, rows.length - 1);
      let shown = 0;
      for (let i = first; i <= last; i++) shown += heightOf(rows[i]);
      setHeight(above, top);
      setHeight(below, y - top - shown);
      const elements = rows.slice(first, last + 1).map((row) => row.el);
      if (first > 0) elements.unshift(above);
      if (last < rows.length - 1) elements.push(below);
      return elements;
    }

    /** Measures a shown row of each height, once (again after a resize); whether the
     * estimates were off (a frame more). */
    function measure(rows) {
      if (rows.length <= WHOLE || measured.size === 2) return false;
      let off = false;
      const seen = new Set(measured);
      for (const element of body.children) {
        if (element === above || element === below || element.classList.contains("unrenderable")) continue;
        const kind = element.querySelector(".job-error:not([hidden])") ? "tall" : "plain";
        if (seen.has(kind)) continue;
        seen.add(kind);
        measured.add(kind);
        const height = element.getBoundingClientRect().height;
        if (height > 0 && Math.abs(height - heights[kind]) > 0.5) {
          heights[kind] = height;
          off = true;
        }
        if (seen.size === 2) break;
      }
      return off;
    }

    return { look, slice, measure };
  }

  root.JobsWindow = { create, WHOLE };
})(window);
