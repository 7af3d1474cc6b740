/*
 * The job view's share and export: "Copy link" puts this view's address on the clipboard (or,
 * when the clipboard is refused, shows it selected to copy by hand), without the page's token:
 * a link shared in a chat or a ticket must not carry the credential (whoever opens it adds
 * their own ?token=), and "Download CSV" /
 * "Download JSONL" save the job's history (GET /api/jobs/{id}/history.csv and .jsonl). The
 * downloads are fetched, with the page's token as a header, then saved from a Blob URL: one way
 * with a token or without.
 */
(function (root) {
  "use strict";

  const { $, authorization, currentJob } = root.DashboardPage;

  /** This view's address, less the token. */
  function shareableAddress() {
    const url = new URL(location.href);
    url.searchParams.delete("token");
    return url.toString();
  }

  function say(text) {
    $("share-status").textContent = text;
  }

  /**
   * Wire the job view's share and export buttons (once per page).
   *
   * Args:
   *   beforeCopy: brings the address up to date with what the view shows, before it is copied.
   */
  function create({ beforeCopy }) {
    async function copyLink() {
      beforeCopy();
      const href = shareableAddress();
      const box = $("share-link");
      try {
        if (!navigator.clipboard) throw new Error("no clipboard"); // http on another host than localhost
        await navigator.clipboard.writeText(href);
        box.hidden = true;
        say("Link copied");
      } catch (error) {
        box.value = href;
        box.hidden = false;
        box.focus();
        box.select();
        say("The clipboard is not available: copy the link from the box");
      }
    }

    let shown = 0; // which job's messages the status line takes (reset() moves on)
    const sayFor = (asked, message) => asked === shown && say(message);

    async function download(kind) {
      const id = currentJob();
      if (id === null) return;
      const asked = shown;
      say(`Downloading ${kind.toUpperCase()}…`);
      try {
        const path = `/api/jobs/${encodeURIComponent(id)}/history.${kind}`;
        const response = await fetch(path, { headers: authorization, cache: "no-store" });
        if (!response.ok) throw new Error(`the sidecar answered ${response.status}`);
        const url = URL.createObjectURL(await response.blob());
        const link = Object.assign(document.createElement("a"), { href: url, download: `${id}-history.${kind}` });
        link.hidden = true;
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000); // the browser has read it by then
        sayFor(asked, "");
      } catch (error) {
        sayFor(asked, `Download failed: ${error instanceof Error ? error.message : "unknown error"}`);
      }
    }

    $("copy-link").addEventListener("click", copyLink);
    $("download-csv").addEventListener("click", () => download("csv"));
    $("download-jsonl").addEventListener("click", () => download("jsonl"));

    return {
      /** Another job is shown: no message of the last one's. */
      reset() {
        shown += 1;
        say("");
        $("share-link").hidden = true;
      },
    };
  }

  root.JobExport = { create };
})(window);
