/*
 * The dashboard's router: the address names the view (#job=<id>: that job's, job-view.js;
 * #compare=<id>,<id>...: those jobs' curves on one chart, compare-view.js; else the jobs list,
 * jobs-list.js, whose filters the rest of the hash holds). It starts the page: the jobs list's
 * socket, then the view the address names, and follows the address as it changes.
 */
(function (root) {
  "use strict";

  const { currentJob, currentCompare } = root.DashboardPage;

  // Job ids as sidecar/core/contract.py has them (a test holds the two together); the server
  // refuses others (4400) all the same.
  const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

  // The views are made before the list connects: every message of the list reaches them.
  const isJobId = (id) => JOB_ID.test(id);
  const list = root.JobsList.create({
    onUpdate: () => {
      view.followList();
      compare.followList();
    },
  });
  const view = root.JobView.create({ list, isJobId });
  const compare = root.CompareView.create({ list, isJobId });

  function route() {
    const id = currentJob();
    const ids = currentCompare();
    if (id !== null) {
      list.hide();
      compare.hide();
      view.show(id);
    } else if (ids !== null) {
      list.hide();
      view.hide();
      compare.show(ids);
    } else {
      view.hide();
      compare.hide();
      list.show();
    }
  }

  window.addEventListener("hashchange", route);
  list.connect();
  route();
  root.HealthBanner.start();
})(window);
