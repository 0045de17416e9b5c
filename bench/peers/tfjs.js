// Peer: @tensorflow/tfjs-backend-wasm (XNNPACK, simd128) on @tensorflow/tfjs-core.
// In Node the wasm backend runs single-threaded: its WASM_HAS_MULTITHREAD_SUPPORT flag is
// hard-wired to false under Node (tensorflow/tfjs#3830), so setThreadsCount has no effect;
// we still call it and report getThreadsCount() after initialisation.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs-core');
const tfwasm = require('@tensorflow/tfjs-backend-wasm');

export const tfjsVersion = require('@tensorflow/tfjs-backend-wasm/package.json').version;

let ready = null;

/** Initialises the wasm backend once; returns { threads, simd, multithread }. */
export function initTfjs(wantThreads) {
  if (!ready) {
    ready = (async () => {
      // The .wasm files sit in the package's dist/; in Node a filesystem prefix works.
      const dist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
      tfwasm.setWasmPaths(dist);
      if (typeof tfwasm.setThreadsCount === 'function') tfwasm.setThreadsCount(wantThreads);
      if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") failed');
      await tf.ready();
      return {
        backend: tf.getBackend(),
        threads: typeof tfwasm.getThreadsCount === 'function' ? tfwasm.getThreadsCount() : 1,
        requestedThreads: wantThreads,
        simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
        multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
      };
    })();
  }
  return ready;
}

/**
 * A runnable out (M,N) = x (M,K) · W (N,K)ᵀ.
 * variant 'transposeB': tf.matMul(x, W, false, true) — W stored as (N,K) like ferrogpt.
 * variant 'preTransposed': tf.matMul(x, Wᵀ) with Wᵀ (K,N) made once, outside the timing —
 *   how a tfjs user would store a weight for speed (tfjs-wasm's transposeB path is much slower).
 * run() is synchronous (the wasm backend computes when the op is called); the result is disposed.
 */
export function tfjsMatmul(M, K, N, x, W, variant) {
  const tx = tf.tensor2d(x, [M, K]);
  const tw = variant === 'transposeB' ? tf.tensor2d(W, [N, K]) : tf.tidy(() => tf.transpose(tf.tensor2d(W, [N, K])));
  let keep = null;
  const op = () => (variant === 'transposeB' ? tf.matMul(tx, tw, false, true) : tf.matMul(tx, tw));
  return {
    run: () => {
      op().dispose();
    },
    read: () => {
      keep?.dispose();
      keep = op();
      return keep.dataSync();
    },
    dispose: () => {
      keep?.dispose();
      tx.dispose();
      tw.dispose();
    },
  };
}
