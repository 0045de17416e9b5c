// The page test/browser.test.ts runs the kernel cases on (helpers/cases.ts, the ones
// kernels.test.ts runs in Node): window.runCases(variant, threads) loads that WebAssembly
// build in this page and returns every case's outputs, which the test compares with the
// float64 reference in Node. Also window.loadInfo(): what the default load picks here.

import { createWasmBackend } from '../../src/backend/wasm.js';
import { buildCases, outputsOf, runOnBackend } from '../helpers/cases.js';
import type { WasmVariant } from '../../bindings/wasm.js';

type Outputs = Record<string, Record<string, number[]>>;

async function runCases(variant: WasmVariant, threads: number, labels: string[]): Promise<{ info: unknown; outputs: Outputs; results: Record<string, number> }> {
  const backend = await createWasmBackend({ variant, threads });
  try {
    const outputs: Outputs = {};
    const results: Record<string, number> = {};
    for (const c of buildCases().filter((x) => labels.includes(x.label))) {
      const got = runOnBackend(backend, c);
      outputs[c.label] = Object.fromEntries(outputsOf(c).map((name) => [name, Array.from(got.outputs[name])]));
      if (typeof got.result === 'number') results[c.label] = got.result;
    }
    return { info: backend.info(), outputs, results };
  } finally {
    backend.pool?.terminate();
  }
}

async function loadInfo(): Promise<{ info: unknown; variant: string; skipped: readonly string[] }> {
  const backend = await createWasmBackend();
  try {
    return { info: backend.info(), variant: backend.variant, skipped: backend.skipped };
  } finally {
    backend.pool?.terminate();
  }
}

Object.assign(window, { runCases, loadInfo, crossOriginIsolatedNow: () => globalThis.crossOriginIsolated === true });
(window as unknown as { pageReady: boolean }).pageReady = true;
