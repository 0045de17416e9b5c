// The README's examples, run as written: each ```js block of README.md is written to a file
// and run (in order: later blocks load what earlier ones saved) in a scratch folder that has
// the bundled corpus at data/corpus.txt, with 'ferrogpt' resolved to the sources under test.
// Then every `npx ferrogpt` line of the CLI section runs there too, with one change so the
// suite stays fast: step and length counts are cut (--steps → 3 or 4, -n → 20). A README
// example that stops working fails here.

import { execFileSync, spawnSync } from 'node:child_process';
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

/** Splits a shell line into words: double-quoted strings and bare words (enough for the README). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

describe('README CLI lines', () => {
  const cliSection = readme.slice(readme.indexOf('## CLI'));
  const cliBlock = /```sh\n([\s\S]*?)```/.exec(cliSection)?.[1] ?? '';
  const lines = cliBlock
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('npx ferrogpt'));

  it('has the CLI lines this test expects', () => {
    expect(lines.length).toBe(16);
  });

  // finetune/eval/predict read labeled files the README leaves to the user: write small ones.
  const labeled = ['a fine and happy day\tpos', 'a dull and sad day\tneg', 'happy happy joy\tpos', 'sad and gloomy\tneg']
    .map((l) => l.split('\t'))
    .map(([text, label]) => JSON.stringify({ text, label }))
    .join('\n');

  let steps = 3;
  lines.forEach((line) => {
    it(line, () => {
      writeFileSync(join(work, 'train.jsonl'), labeled);
      writeFileSync(join(work, 'valid.jsonl'), labeled);
      const argv = shellWords(line).slice(2);
      for (let i = 0; i < argv.length - 1; i++) {
        if (argv[i] === '--steps') argv[i + 1] = String(steps++);
        if (argv[i] === '-n') argv[i + 1] = '20';
      }
      const run = spawnSync(process.execPath, [join(root, 'test/helpers/run-cli.mjs'), ...argv], {
        cwd: work,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 180_000,
      });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout.length + run.stderr.length).toBeGreaterThan(0);
    });
  });
});
