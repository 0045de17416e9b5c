// The page of the browser suite (bench/suites/browser.js builds it with vite and drives it
// with playwright-core). One page measures one thread count: onnxruntime-web's
// env.wasm.numThreads and tfjs-backend-wasm's setThreadsCount take effect once per page, so
// the suite opens a fresh page per count, and ferrogpt's variants run in the same page as
// the peers they are compared with. The measurements are bench/lib/wasm-bench.js, the code
// Node's side runs too.
//
// ferrogpt comes from the compiled library (dist/, bundled here: the wasm files and any
// worker the backend starts are assets of the bundle, as in a user's app). The peers are
// served as they ship (bench/peers/node_modules/…/dist under /peers/), not bundled:
// onnxruntime-web's ort.wasm.min.mjs is imported at run time and finds its .wasm and
// .mjs by env.wasm.wasmPaths; tfjs's UMD scripts set window.tf.
//
// window.bench.run({ threads, quick, parts, peers: { ort, tfjs } }) → the results as JSON.
// Every Worker the page starts is recorded (a wrapper installed by the suite before any
// script runs: window.__workers), so the report shows which runtime really started threads.

import * as index from '../../dist/src/index.js';
import * as wasmModule from '../../dist/src/backend/wasm.js';
import { paramLayout } from '../../dist/src/model/params.js';
import { resolveConfig } from '../../dist/src/model/config.js';
import { runWasmSuite } from '../lib/wasm-bench.js';
import { errText } from '../lib/util.js';
import { matmulModel, transpose } from '../lib/onnx.js';
// "Today's" build (bench/lib/baseline.js) or nothing: the suite aliases this name to a module
// it writes, which re-exports that checkout's dist/ or exports `today = null`.
import { today } from 'ferrogpt-today';

const api = {
  // The threaded build exports it from the entry point; before it, only the backend module.
  createWasmBackend: Reflect.get(index, 'createWasmBackend') ?? wasmModule.createWasmBackend,
  GPT: index.GPT,
  AdamW: index.AdamW,
  clipGradNorm: index.clipGradNorm,
  paramLayout,
  resolveConfig,
};

const todayApi = today ? { createWasmBackend: today.wasm.createWasmBackend, GPT: today.index.GPT, AdamW: today.index.AdamW, clipGradNorm: today.index.clipGradNorm } : null;

const here = (path) => new URL(path, location.href).href;
const workers = () => (window.__workers ?? []).length;
const pageLog = document.getElementById('log');
const log = (s) => {
  console.log(s);
  pageLog.textContent += '\n' + s;
};

function loadScript(path) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = here(path);
    s.onload = () => resolve();
    s.onerror = () => reject(new Error(`could not load ${path}`));
    document.head.appendChild(s);
  });
}

/**
 * out (M,N) = x (M,K) · W (N,K)ᵀ as a one-node ONNX MatMul (bench/lib/onnx.js), W as an
 * initializer. Each run lets onnxruntime allocate the output: onnxruntime-web 1.31.1 hands a
 * pre-allocated output tensor back unfilled (all zeros; bench:kernels' onnxruntime-node
 * fills it), which `preallocation` below detects and reports instead of assuming.
 */
let ortPreallocation = null;
async function ortMatmul(ort, M, K, N, x, W) {
  const session = await ort.InferenceSession.create(matmulModel(M, K, N, transpose(W, N, K)), {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const feeds = { X: new ort.Tensor('float32', x, [M, K]) };
  let last = (await session.run(feeds)).Y;
  if (ortPreallocation === null) {
    const pre = new ort.Tensor('float32', new Float32Array(M * N), [M, N]);
    try {
      await session.run(feeds, { Y: pre });
      const same = pre.data.every((v, i) => v === last.data[i]);
      ortPreallocation = same ? 'a pre-allocated output is filled (not used: outputs are allocated per run)' : 'a pre-allocated output comes back unfilled, so outputs are allocated per run';
    } catch (e) {
      ortPreallocation = `pre-allocated outputs refused (${errText(e)}); outputs are allocated per run`;
    }
  }
  return {
    run: async () => {
      last = (await session.run(feeds)).Y;
    },
    read: () => last.data,
    dispose: () => session.release(),
  };
}

/** tf.matMul(x, Wᵀ) with Wᵀ (K,N) made once outside the timing, as bench/peers/tfjs.js does. */
function tfjsMatmul(tf, M, K, N, x, W) {
  const tx = tf.tensor2d(x, [M, K]);
  const tw = tf.tidy(() => tf.transpose(tf.tensor2d(W, [N, K])));
  let keep = null;
  return {
    run: () => tf.matMul(tx, tw).dispose(),
    read: () => {
      keep?.dispose();
      keep = tf.matMul(tx, tw);
      return keep.dataSync();
    },
    dispose: () => {
      keep?.dispose();
      tx.dispose();
      tw.dispose();
    },
  };
}

const wasmFilesLoaded = () => [...new Set(performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => /\.(wasm|mjs)$/.test(p)))];

async function initPeers(n, which) {
  const peers = [];
  const info = {};
  if (which.ort) {
    const w0 = workers();
    try {
      const ort = await import(/* @vite-ignore */ here('peers/ort/ort.wasm.min.mjs'));
      ort.env.wasm.numThreads = n;
      ort.env.wasm.wasmPaths = here('peers/ort/');
      // A tiny session starts the runtime (and its thread pool) before anything is timed.
      const s = await ort.InferenceSession.create(matmulModel(2, 2, 2, new Float32Array(4)), { executionProviders: ['wasm'] });
      await s.release();
      info.ort = { version: ort.env.versions?.web ?? null, numThreads: ort.env.wasm.numThreads, workersStarted: workers() - w0 };
      peers.push({ name: 'ort-web', threads: n, make: (M, K, N, x, W) => ortMatmul(ort, M, K, N, x, W) });
    } catch (e) {
      info.ort = { error: errText(e) };
    }
  }
  if (which.tfjs) {
    const w0 = workers();
    try {
      await loadScript('peers/tfjs-core/tf-core.min.js');
      await loadScript('peers/tfjs-wasm/tf-backend-wasm.min.js');
      const tf = window.tf;
      tf.wasm.setWasmPaths(here('peers/tfjs-wasm/'));
      tf.wasm.setThreadsCount(n);
      // tfjs-backend-wasm caps its XNNPACK pool at navigator.hardwareConcurrency / 2
      // (cc/backend.cc: "many x86-64 processors have 2 threads per core"), which is 1 on a
      // 2-core machine whatever setThreadsCount says. So that setThreadsCount(n) takes
      // effect, the page reports 2n cores while tfjs initialises (it reads the count then
      // only), and says so in the results.
      const real = navigator.hardwareConcurrency;
      const shown = Math.max(real, 2 * n);
      if (shown !== real) Object.defineProperty(navigator, 'hardwareConcurrency', { configurable: true, get: () => shown });
      try {
        if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
        await tf.ready();
      } finally {
        delete navigator.hardwareConcurrency; // the prototype's getter again
      }
      info.tfjs = {
        version: tf.wasm.version_wasm ?? null,
        core: tf.version_core ?? null,
        backend: tf.getBackend(),
        requestedThreads: n,
        threads: tf.wasm.getThreadsCount(),
        simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
        multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
        workersStarted: workers() - w0,
        hardwareConcurrencyShownAtInit: shown,
      };
      peers.push({ name: 'tfjs-wasm', threads: n, make: (M, K, N, x, W) => tfjsMatmul(tf, M, K, N, x, W) });
    } catch (e) {
      info.tfjs = { error: errText(e) };
    }
  }
  return { peers, info };
}

window.bench = {
  async run(cfg) {
    const n = cfg.threads;
    const env = {
      userAgent: navigator.userAgent,
      hardwareConcurrency: navigator.hardwareConcurrency,
      crossOriginIsolated: window.crossOriginIsolated,
      sharedArrayBuffer: typeof SharedArrayBuffer !== 'undefined',
    };
    log(`page: ${n} thread(s); crossOriginIsolated ${env.crossOriginIsolated}; hardwareConcurrency ${env.hardwareConcurrency}`);
    const { peers, info } = await initPeers(n, cfg.peers ?? {});
    for (const [k, v] of Object.entries(info)) log(`  peer ${k}: ${JSON.stringify(v)}`);
    const w0 = workers();
    // The suite's CPU monitor, exposed by playwright (page.exposeFunction): other processes' cores.
    const contention = typeof window.__othersBetween === 'function' ? (t0, t1) => window.__othersBetween(t0, t1) : null;
    const waitIdle = typeof window.__waitIdle === 'function' ? (maxS) => window.__waitIdle(maxS) : null;
    const result = await runWasmSuite({ api, todayApi: cfg.today ? todayApi : null, threads: [n], quick: cfg.quick, parts: cfg.parts, peers, log, contention, waitIdle, settleMs: cfg.settleMs, shapes: cfg.shapes });
    env.workersStartedDuringRun = workers() - w0; // by ferrogpt (the peers start theirs in initPeers)
    env.workers = window.__workers ?? null;
    env.filesLoaded = wasmFilesLoaded();
    if (info.ort && !info.ort.error) info.ort.preallocation = ortPreallocation;
    return { env, peers: info, ...result };
  },
};
window.benchReady = true;
