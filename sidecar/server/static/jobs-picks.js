/*
 * The jobs ticked in the list to compare: 2 to MAX_PICKED of them, in the order ticked, and the
 * "Compare (N)" link to the compare view (#compare=ID1,ID2...); a tick past the last is refused,
 * and the page says why.
 */
(function (root) {
  "use strict";

  const { $, compareHash } = root.DashboardPage;

  // The jobs a comparison takes at most (the compare view shows no more).
  const MAX_PICKED = 10;

  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }

  /**
   * The ticks of the page's jobs list (one per page).
   *
   * Args:
   *   body: the list's tbody, whose checkboxes (data-pick=ID) tick and untick jobs.
   */
  function create(body) {
    const picked = new Set();
    let note = "";

    body.addEventListener("change", (event) => {
      const box = event.target;
      if (!(box instanceof HTMLInputElement) || !box.dataset.pick) return;
      const id = box.dataset.pick;
      note = "";
      if (!box.checked) picked.delete(id);
      else if (picked.size < MAX_PICKED) picked.add(id);
      else {
        box.checked = false;
        note = `At most ${MAX_PICKED} jobs can be compared: untick one first.`;
      }
      show();
    });

    /** Shows the link and its note as the ticks are (sets only what changed). */
    function show() {
      const link = $("jobs-compare");
      const ids = [...picked];
      setText(link, `Compare (${ids.length})`);
      const href = ids.length >= 2 ? compareHash(ids) : null;
      if (link.getAttribute("href") === href) {
        // as it was
      } else if (href !== null) {
        link.href = href;
        link.removeAttribute("aria-disabled");
      } else {
        link.removeAttribute("href");
        link.setAttribute("aria-disabled", "true");
      }
      setText($("jobs-pick-note"), note || (ids.length === 1 ? "Tick one more job to compare." : ""));
    }

    return {
      show,
      has: (id) => picked.has(id),
      /** A job gone from the list is no longer ticked. */
      forget: (id) => picked.delete(id),
    };
  }

  root.JobsPicks = { create };
})(window);
