/*
 * The browser client as an ES module, with no build step: the classic script runs once (it
 * defines globalThis.ProgressClient) and this module hands on what it defined.
 *
 *   import { ProgressClient } from "http://sidecar-host:8765/static/progress-client.mjs";
 *
 * Types: progress-client.d.ts. Protocol: docs/protocol.md.
 */
import "./progress-client.js";

export const ProgressClient = globalThis.ProgressClient;
export default ProgressClient;
