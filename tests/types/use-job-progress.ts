import { useEffect, useState } from "react";
import {
  ProgressClient,
  type ClientStatus,
  type JobState,
} from "http://sidecar-host:8765/static/progress-client.mjs";

const SIDECAR = "http://sidecar-host:8765";

/** A job's latest state and the client's status; follows another job when jobId changes. */
export function useJobProgress(jobId: string) {
  const [state, setState] = useState<JobState | null>(null);
  const [status, setStatus] = useState<ClientStatus>("idle");
  const [missing, setMissing] = useState(false);
  useEffect(() => {
    setState(null);
    const client = new ProgressClient({
      url: SIDECAR,
      jobId,
      onState: setState,
      onStatus: (status, code) => {
        setStatus(status);
        setMissing(code === ProgressClient.CLOSE.NOT_FOUND); // no such job (yet): it retries
      },
    }).start();
    return () => client.stop(); // on unmount, or before following the next job
  }, [jobId]);
  return { state, status, missing };
}
