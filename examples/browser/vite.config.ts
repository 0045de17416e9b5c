// Vite config of the browser example (npm run example:browser serves it; the browser test
// builds it with this file). `ferrogpt` is aliased to the sources so the example runs from a
// clone without `npm run build:ts`; an app that installed the package imports the same name
// from node_modules instead (and lists it in optimizeDeps.exclude, so that the package's
// `new URL('…/ferrogpt-simd.wasm', import.meta.url)` still points at the file in dev).
//
// Both servers send COOP/COEP (CROSS_ORIGIN_ISOLATION): a cross-origin isolated page may
// share memory with Workers, which the threaded WebAssembly kernels need. Without them the
// kernels run on one thread and say so once in the console.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { NODE_STAND_INS } from '../../scripts/node-stand-ins.mjs';

export const CROSS_ORIGIN_ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  resolve: {
    alias: [
      { find: /^ferrogpt$/, replacement: fileURLToPath(new URL('../../src/index.ts', import.meta.url)) },
      // What package.json's "browser" field does for the built package, for the sources:
      // Node's modules become src/io/browser-node.ts (file I/O throws, sha256 works).
      { find: NODE_STAND_INS, replacement: fileURLToPath(new URL('../../src/io/browser-node.ts', import.meta.url)) },
    ],
  },
  optimizeDeps: { exclude: ['ferrogpt'] },
  // Module workers: the library splits into chunks (backends load lazily), which the
  // default 'iife' worker format cannot hold.
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 2048 },
  server: { host: '127.0.0.1', headers: CROSS_ORIGIN_ISOLATION },
  preview: { host: '127.0.0.1', headers: CROSS_ORIGIN_ISOLATION },
});
