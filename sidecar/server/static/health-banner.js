/*
 * The dashboard's health banner: what /healthz says that changes what the page shows, above
 * every view. A cluster's bus down (the other nodes' jobs may be out of date, though the page's
 * own sockets are live), nodes lost (their running jobs are shown stalled), a background task
 * down (being restarted). Looked at every HEALTH_INTERVAL while the page is visible.
 */
(function (root) {
  "use strict";

  const { authorization, $ } = root.DashboardPage;
  const fmt = root.DashboardFormat;
  const { field } = fmt;

  const HEALTH_INTERVAL = 5000;
  const MAX_NAMES = 5; // lost nodes and tasks named at most; then "and N more"

  function names(list) {
    const shown = list.slice(0, MAX_NAMES).map((name) => fmt.text(name, fmt.TEXT.name));
    return list.length > MAX_NAMES ? `${shown.join(", ")} and ${list.length - MAX_NAMES} more` : shown.join(", ");
  }

  function stringList(value) {
    return Array.isArray(value) ? value.filter((item) => typeof item === "string") : [];
  }

  /** The banner's lines for one answer of /healthz (none when all is well). */
  function linesOf(health) {
    const lines = [];
    if (field(health, "bus") === "down") {
      const reason = fmt.text(field(health, "bus_reason"), fmt.TEXT.field, "Redis does not answer");
      lines.push(
        field(health, "role") === "gateway"
          ? `This gateway's bus is down (${reason}): the jobs shown may be out of date. It retries.`
          : `The cluster's bus is down (${reason}): this node's jobs are live, other nodes' may be out of date. It retries.`,
      );
    }
    const lost = stringList(field(health, "lost_nodes"));
    if (lost.length) {
      lines.push(`${lost.length === 1 ? "Node" : "Nodes"} ${names(lost)} lost: not heard from; ${lost.length === 1 ? "its" : "their"} running jobs are shown stalled.`);
    }
    // tasks_down: each task down, by name, with why (an object).
    const tasks = field(health, "tasks_down");
    const down = tasks !== null && typeof tasks === "object" && !Array.isArray(tasks) ? Object.keys(tasks) : [];
    if (down.length) lines.push(`The sidecar's ${names(down)} ${down.length === 1 ? "task is" : "tasks are"} down and being restarted: what ${down.length === 1 ? "it does" : "they do"} is not done meanwhile.`);
    return lines;
  }

  function show(lines) {
    const banner = $("health-banner");
    banner.hidden = lines.length === 0;
    banner.replaceChildren(...lines.map((line) => {
      const p = document.createElement("p");
      p.textContent = line;
      return p;
    }));
  }

  async function look() {
    try {
      const response = await fetch(new URL("/healthz", location.href), { headers: authorization, cache: "no-store" });
      // 503: degraded (a task down); it still says why. 401 and others: the views say so.
      if (response.ok || response.status === 503) show(linesOf(await response.json()));
    } catch (error) {
      // unreachable: the views' sockets say so
    }
  }

  /** Look now, then every HEALTH_INTERVAL while the page is visible (one look at a time). */
  function start() {
    let timer = null;
    let busy = false;
    const tick = () => {
      timer = null;
      busy = true;
      look().finally(() => {
        busy = false;
        if (document.visibilityState !== "hidden") timer = setTimeout(tick, HEALTH_INTERVAL);
      });
    };
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && timer === null && !busy) tick();
    });
    tick();
  }

  root.HealthBanner = { start, linesOf };
})(window);
