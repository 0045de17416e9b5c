// Peer: onnxruntime-node (CPU execution provider). The matmul is a one-node ONNX model
// (MatMul, weights as a constant initializer) written by bench/lib/onnx.js.

import { createRequire } from 'node:module';
import { matmulModel, transpose } from '../lib/onnx.js';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');

export const ortVersion = ort.env?.versions?.node ?? require('onnxruntime-node/package.json').version;

/**
 * A runnable out (M,N) = x (M,K) · W (N,K)ᵀ on onnxruntime with `threads` intra-op threads
 * (inter-op 1, sequential execution). run() is async (onnxruntime-node runs sessions off
 * the JS thread); the output tensor is pre-allocated and reused when ORT accepts it.
 */
export async function ortMatmul(M, K, N, x, W, threads) {
  const model = matmulModel(M, K, N, transpose(W, N, K));
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const feeds = { X: new ort.Tensor('float32', x, [M, K]) };
  const y = new ort.Tensor('float32', new Float32Array(M * N), [M, N]);
  let fetches = { Y: y };
  let last = null;
  try {
    await session.run(feeds, fetches);
  } catch {
    fetches = undefined; // this ORT build does not take pre-allocated outputs
  }
  const preallocated = fetches !== undefined;
  return {
    preallocated,
    run: async () => {
      const r = await session.run(feeds, fetches);
      last = r.Y;
    },
    read: () => (last ?? y).data,
    dispose: async () => session.release(),
  };
}
