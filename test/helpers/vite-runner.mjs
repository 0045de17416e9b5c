// Vite's module runner over this repository, for test child processes that must run the
// TypeScript sources directly (no built dist/, so never a stale one): the kill test's
// trainer, the CLI runs and the README examples. 'ferrogpt' resolves to src/index.ts.

import { fileURLToPath } from 'node:url';
import { createServer, createServerModuleRunner } from 'vite';

export const root = fileURLToPath(new URL('../..', import.meta.url));

/** Calls fn(runner) with a module runner (runner.import('/src/...')), then shuts it down. */
export async function withRunner(fn) {
  const server = await createServer({
    root,
    configFile: false, // not vitest.config.ts: plain module loading, nothing else
    logLevel: 'error',
    resolve: { alias: { ferrogpt: `${root}src/index.ts` } },
    server: { middlewareMode: true, hmr: false, ws: false, fs: { strict: false } },
    optimizeDeps: { noDiscovery: true, include: [] },
  });
  const runner = createServerModuleRunner(server.environments.ssr, { hmr: false });
  try {
    return await fn(runner);
  } finally {
    await runner.close();
    await server.close();
  }
}
