// Child process of test/checkpoint.test.ts's kill test: trains with checkpoints so the test
// can SIGKILL it in the middle of writing one.
//
//   node test/helpers/kill-during-checkpoint.mjs '<json args>'   (see kill-during-checkpoint.child.ts)
//
// It runs the TypeScript sources directly, through Vite's module runner (vite is a
// devDependency, as vitest is), so the test needs neither a built dist/ nor a stale one:
// the child runs exactly the code under test, on a clean clone after `npm ci`.

import { fileURLToPath } from 'node:url';
import { createServer, createServerModuleRunner } from 'vite';

const root = fileURLToPath(new URL('../..', import.meta.url));
const server = await createServer({
  root,
  configFile: false, // not vitest.config.ts: plain module loading, nothing else
  logLevel: 'error',
  server: { middlewareMode: true, hmr: false, ws: false },
  optimizeDeps: { noDiscovery: true, include: [] },
});
const runner = createServerModuleRunner(server.environments.ssr, { hmr: false });
try {
  await runner.import('/test/helpers/kill-during-checkpoint.child.ts');
} finally {
  await runner.close();
  await server.close();
}
