// The README's JavaScript examples, run as written: each ```js block of README.md is written
// to a file and run (in order: later blocks load what earlier ones saved) in a scratch
// folder that has the bundled corpus at data/corpus.txt, with 'ferrogpt' resolved to the
// sources under test. A README example that stops working fails here.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
const work = mkdtempSync(join(tmpdir(), 'ferrogpt-readme-'));
symlinkSync(join(root, 'data'), join(work, 'data'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('README examples', () => {
  it('has the examples this test expects', () => {
    expect(blocks.length).toBe(3);
  });

  blocks.forEach((code, i) => {
    const firstLine = code.split('\n').find((l) => l.startsWith('import')) ?? '';
    it(`block ${i + 1} runs (${firstLine.slice(0, 70)}…)`, () => {
      const file = join(work, `block${i + 1}.mjs`);
      writeFileSync(file, code);
      const out = execFileSync(process.execPath, [join(root, 'test/helpers/run-module.mjs'), file], {
        cwd: work,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 180_000,
      });
      expect(out.length).toBeGreaterThan(0);
    });
  });
});
