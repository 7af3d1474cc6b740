// The ES module's exports, as its JavaScript makes them, are those progress-client.d.ts declares
// (the classic script's class is held to the declarations by its own JSDoc, where it sets the global).
import * as declared from "/static/progress-client.mjs";
import * as actual from "../../sidecar/server/static/progress-client.mjs";

export const exports: typeof declared = actual;
