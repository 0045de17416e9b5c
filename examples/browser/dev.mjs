#!/usr/bin/env node
// npm run example:browser — serves the browser example with vite's dev server.
//
// The page loads a checkpoint from ./model/ (examples/browser/public/model/, git-ignored).
// If there is none, one is made first with the CLI (a tiny character-level GPT trained on
// the bundled corpus for 300 steps, ~1 min; needs `npm run build`), and the corpus is
// copied next to it as train.txt for the page's live training. Any folder that
// `ferrogpt train --out` wrote works: copy it to public/model/, or serve it elsewhere and
// open the page with ?model=<url of the folder>/.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const modelDir = join(here, 'public', 'model');

if (!existsSync(join(modelDir, 'config.json'))) {
  const cli = join(root, 'dist', 'src', 'cli', 'index.js');
  if (!existsSync(cli)) {
    console.error('example: dist/ is missing; run `npm run build` first');
    process.exit(1);
  }
  console.log(`example: no checkpoint in ${modelDir}; training one with the CLI`);
  const r = spawnSync(process.execPath, [cli, 'train', '--data', join(root, 'data', 'corpus.txt'), '--steps', '300', '--out', modelDir], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
if (!existsSync(join(modelDir, 'train.txt'))) copyFileSync(join(root, 'data', 'corpus.txt'), join(modelDir, 'train.txt'));

const server = await createServer({ configFile: join(here, 'vite.config.ts') });
await server.listen();
server.printUrls();
