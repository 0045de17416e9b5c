// Child process of test/checkpoint.test.ts's kill tests: trains (train or finetune) with
// checkpoints so the test can SIGKILL it in the middle of writing one.
//
//   node test/helpers/kill-during-checkpoint.mjs '<json args>'   (see kill-during-checkpoint.child.ts)
//
// It runs the TypeScript sources directly, through Vite's module runner (vite is a
// devDependency, as vitest is), so the test needs neither a built dist/ nor a stale one:
// the child runs exactly the code under test, on a clean clone after `npm ci`.

import { withRunner } from './vite-runner.mjs';

await withRunner((runner) => runner.import('/test/helpers/kill-during-checkpoint.child.ts'));
