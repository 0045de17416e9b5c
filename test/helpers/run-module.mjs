// Runs one ES module (an absolute path) on the sources under test, 'ferrogpt' resolved to
// src/index.ts. Used by test/readme.test.ts to run the README's examples as written.
//
//   node test/helpers/run-module.mjs /abs/path/to/example.mjs

import { withRunner } from './vite-runner.mjs';

await withRunner((runner) => runner.import(process.argv[2]));
