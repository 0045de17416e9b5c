// Node's half of the browser suite: ferrogpt's wasm backend in Node, measured by the same
// code as the page (bench/lib/wasm-bench.js). bench/suites/browser.js starts it as
//   node --experimental-wasm-relaxed-simd bench/lib/wasm-node-child.js '<json>'
// (Node 20's V8 has relaxed SIMD behind that flag; without it the relaxed-simd variant is
// n/a). Progress goes to stderr; the last stdout line is the result as JSON.
// The json: { root, threads: [1, 2], quick, parts, waitIdle, settleMs, todayRoot, shapes }. Its own CPU monitor (the suite
// that started it is idle meanwhile) tells each measurement whether other processes took
// cores while it ran, as the suite's does for the page.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runWasmSuite } from './wasm-bench.js';
import { startCpuMonitor, waitIdle } from './cpu-monitor.js';

const args = JSON.parse(process.argv[2] ?? '{}');
const root = args.root;
const imp = (rel) => {
  const file = join(root, 'dist', rel);
  if (!existsSync(file)) throw new Error(`${join('dist', rel)} not found (run npm run build:ts)`);
  return import(pathToFileURL(file).href);
};

const index = await imp('src/index.js');
// createWasmBackend is exported from the entry point by the threaded build; before it, only
// from the backend's module.
const createWasmBackend = index.createWasmBackend ?? (await imp('src/backend/wasm.js')).createWasmBackend;
const { paramLayout } = await imp('src/model/params.js');
const { resolveConfig } = await imp('src/model/config.js');
const api = { createWasmBackend, GPT: index.GPT, AdamW: index.AdamW, clipGradNorm: index.clipGradNorm, paramLayout, resolveConfig };

// "Today's" build (bench/lib/baseline.js), when the suite found one: its own library, whole.
let todayApi = null;
if (args.todayRoot) {
  const timp = (rel) => import(pathToFileURL(join(args.todayRoot, 'dist', rel)).href);
  const tIndex = await timp('src/index.js');
  todayApi = { createWasmBackend: (await timp('src/backend/wasm.js')).createWasmBackend, GPT: tIndex.GPT, AdamW: tIndex.AdamW, clipGradNorm: tIndex.clipGradNorm };
}

const env = {
  node: process.version,
  execArgv: process.execArgv,
  relaxedSimdValidates: (() => {
    // i32x4.relaxed_trunc_f32x4_s (0xfd 0x101) in a function body: validates only with relaxed SIMD on.
    try {
      return WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 25, 1, 23, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 129, 2, 11]));
    } catch {
      return false;
    }
  })(),
};
const log = (s) => process.stderr.write(s + '\n');
const mon = startCpuMonitor();
const result = await runWasmSuite({
  api,
  threads: args.threads,
  quick: args.quick,
  parts: args.parts,
  log,
  contention: mon.available ? (t0, t1) => mon.othersBetween(t0, t1) : null,
  settleMs: args.settleMs ?? 0,
  shapes: args.shapes,
  todayApi,
  waitIdle: async (maxS) => (await waitIdle(mon, { maxS: args.waitIdle ? maxS : 0, log })).idle,
});
mon.stop();
process.stdout.write(JSON.stringify({ env, ...result }) + '\n');
process.exit(0); // a worker pool may keep the loop alive
