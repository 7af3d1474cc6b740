/*
 * The dashboard's router: the address names the view (#job=<id>: that job's, job-view.js; else
 * the jobs list, jobs-list.js). It starts the page: the jobs list's socket, then the view the
 * address names, and follows the address as it changes.
 */
(function (root) {
  "use strict";

  const { currentJob } = root.DashboardPage;

  // Job ids as sidecar/core/contract.py has them (a test holds the two together); the server
  // refuses others (4400) all the same.
  const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

  // `view` is made before the list connects: every message of the list reaches it.
  const list = root.JobsList.create({ onUpdate: () => view.followList() });
  const view = root.JobView.create({ list, isJobId: (id) => JOB_ID.test(id) });

  function route() {
    const id = currentJob();
    if (id === null) {
      view.hide();
      list.show();
    } else {
      list.hide();
      view.show(id);
    }
  }

  window.addEventListener("hashchange", route);
  list.connect();
  route();
})(window);
