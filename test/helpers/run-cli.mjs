// `ferrogpt <args>` on the sources under test (no built dist/): used by test/readme.test.ts
// to run the README's CLI lines.
//
//   node test/helpers/run-cli.mjs train --data ... --steps 3

import { withRunner } from './vite-runner.mjs';

await withRunner(async (runner) => {
  const { main } = await runner.import('/src/cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
});
