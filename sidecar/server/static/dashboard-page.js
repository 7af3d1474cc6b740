/*
 * What the dashboard's views share: the page's token (and the headers and subprotocols that carry
 * it), the job the address names, the connection line in the header, and the guard that keeps a
 * throw while showing one part of a job from costing more than that part.
 */
(function (root) {
  "use strict";

  const token = new URLSearchParams(location.search).get("token") || "";
  const protocols = token ? ["bearer", token] : [];
  const authorization = token ? { Authorization: `Bearer ${token}` } : {};
  const $ = (id) => document.getElementById(id);

  // A throw while showing one job (a bug, or a value no formatter foresaw) costs that row, that
  // fact or the chart only: it is caught, that part shows a placeholder, and the console says
  // why once. Past this many distinct reports, no more (a page left open for days).
  const MAX_REPORTS = 100;
  const reported = new Set();

  function report(what, error) {
    const reason = error instanceof Error ? error.message : typeof error;
    const text = `dashboard: cannot show ${what}: ${reason}`;
    if (reported.has(text) || reported.size >= MAX_REPORTS) return;
    reported.add(text);
    console.error(text);
  }

  function guard(what, render) {
    try {
      render();
    } catch (error) {
      report(what, error);
    }
  }

  /** An element that shows `content` (text from a job) isolated from the text around it. */
  function isolated(content) {
    const element = document.createElement("bdi");
    element.textContent = content;
    return element;
  }

  function setConnection(text, kind) {
    const element = $("connection");
    element.textContent = text;
    element.className = kind || "";
  }

  /** The address's hash as parameters: `#job=ID`, `#compare=ID1,ID2`, or the jobs list's
   * `#status=failed&node=NAME&q=TEXT` (URLSearchParams' decoding: a malformed escape is kept). */
  function hashParams() {
    return new URLSearchParams(location.hash.replace(/^#/, ""));
  }

  /** A part of the address, unescaped; with a malformed escape, as it is (an id then shown
   * as written, and refused as invalid). */
  function decode(part) {
    try {
      return decodeURIComponent(part);
    } catch (error) {
      return part;
    }
  }

  /** The job the address names (`#job=<id>`, up to an `&` that starts the chart's parameters),
   * or null for another view. */
  function currentJob() {
    const match = location.hash.match(/^#job=([^&]+)/);
    return match ? decode(match[1]) : null;
  }

  /** The jobs the address compares (`#compare=ID1,ID2,...`, in that order, each once, up to an
   * `&` that starts the chart's parameters), or null for another view. Ids are as written: the
   * compare view refuses invalid ones. */
  function currentCompare() {
    const match = location.hash.match(/^#compare=([^&]*)/);
    if (!match) return null;
    const ids = match[1].split(",").map(decode);
    return [...new Set(ids.filter((id) => id !== ""))];
  }

  /** Whether the address shows the jobs list (neither a job nor a comparison). */
  function isListView() {
    return currentJob() === null && currentCompare() === null;
  }

  /** The address of a comparison of `ids`. */
  function compareHash(ids) {
    return `#compare=${ids.map(encodeURIComponent).join(",")}`;
  }

  root.DashboardPage = {
    token, protocols, authorization, $, report, guard, isolated, setConnection,
    decode, hashParams, currentJob, currentCompare, isListView, compareHash,
  };
})(window);
