// The `ferrogpt` command line, run as a child process on the TypeScript sources (through
// Vite's module runner, as test/helpers/kill-during-checkpoint.mjs does), so the test needs
// no built dist/ and never runs a stale one.
//
// Starting Vite costs ~2 s, so the quick checks (help, usage errors) run in ONE child that
// calls main() once per command line and reports each one's exit code and output; train
// and sample each get a real child with real stdio.

import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../src/io/safetensors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lossCurveSvg, niceTicks } from '../src/cli/svg.js';
import { Progress, formatDuration } from '../src/cli/progress.js';

const root = fileURLToPath(new URL('..', import.meta.url));

// The child: FERROGPT_CLI_RUNS = JSON list of argv lists. One list: run it with real stdio
// and exit with its code. Several: capture each run's output and print a JSON report.
const CHILD = `
import { withRunner } from './test/helpers/vite-runner.mjs';
const runs = JSON.parse(process.env.FERROGPT_CLI_RUNS);
await withRunner(async (runner) => {
  const { main } = await runner.import('/src/cli/main.ts');
  if (runs.length === 1) {
    process.exitCode = await main(runs[0]);
  } else {
    const out = process.stdout.write.bind(process.stdout);
    const err = process.stderr.write.bind(process.stderr);
    const report = [];
    for (const argv of runs) {
      const r = { argv, stdout: '', stderr: '', code: -1 };
      process.stdout.write = (s) => ((r.stdout += s), true);
      process.stderr.write = (s) => ((r.stderr += s), true);
      try { r.code = await main(argv); } finally { process.stdout.write = out; process.stderr.write = err; }
      report.push(r);
    }
    out(JSON.stringify(report) + '\\n');
  }
});
`;

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function spawnCli(runs: string[][]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      cwd: root,
      env: { ...process.env, FERROGPT_CLI_RUNS: JSON.stringify(runs), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const cli = (...argv: string[]): Promise<RunResult> => spawnCli([argv]);

/** A minimal XML well-formedness check: every tag closes in order, one root element. */
function checkXml(text: string): string[] {
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  const names: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (const m of body.matchAll(tag)) {
    const between = body.slice(last, m.index);
    if (/[<>]/.test(between)) throw new Error(`stray markup before offset ${m.index}: ${JSON.stringify(between.slice(0, 60))}`);
    last = m.index + m[0].length;
    const [, closing, name, , selfClosing] = m;
    if (closing) {
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element`);
      continue;
    }
    if (stack.length === 0) roots++;
    names.push(name);
    if (!selfClosing) stack.push(name);
  }
  if (/[<>]/.test(body.slice(last))) throw new Error('stray markup at the end');
  if (stack.length !== 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return names;
}

describe('ferrogpt CLI (child process)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferrogpt-cli-'));
    // ~20 KB of the bundled corpus: enough for a train and a val split of 64-token windows.
    const corpus = await readFile(join(root, 'data', 'corpus.txt'), 'utf8');
    await writeFile(join(dir, 'text.txt'), corpus.slice(0, 20_000));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("package.json's bin is built executable (the README runs it with npx in a clone)", async () => {
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    for (const bin of Object.values(pkg.bin)) expect((statSync(join(root, bin)).mode & 0o111) !== 0, `${bin} is executable`).toBe(true);
  });

  it('prints help for every command, the version, and exits 2 on usage errors', async () => {
    const runs = [
      ['--help'],
      ['train', '--help'],
      ['sample', '--help'],
      ['demo', '--help'],
      ['finetune', '--help'],
      ['help', 'train'],
      ['--version'],
      [],
      ['bogus'],
      ['train', '--bogus'],
      ['train', '--data', 'x.txt', '--steps', 'abc'],
      ['train', '--data', 'x.txt', '--tokenizer', 'words'],
      ['train', '--data', 'x.txt', '--preset', 'huge'],
      ['sample', '--model', 'm', '--temperature', 'hot'],
      ['sample', '--prompt', 'hi'],
      ['demo', '--minutes', '0'],
      ['demo', '--minutes', '-1'],
      ['train', '--data', 'x.txt', '--backend', 'gpu'],
      ['sample', 'extra-positional'],
      ['score', '--help'],
      ['score', '--model', 'm', '--candidates', ' a', '--normalize', 'prior'],
      ['score', '--model', 'm', '--candidates', ' a', '--answer-context', 'A:'],
      ['convert', '--help'],
      ['convert', '--model', 'm', '--out', 'n'],
      ['convert', '--model', 'm', '--dtype', 'int4', '--out', 'n'],
      ['convert', '--model', 'm', '--dtype', 'int8', '--out', 'm'],
      ['sample', '--model', 'm', '--dtype', 'f16'],
      ['generate', '--model', 'm', '--kv-dtype', 'f16'],
    ];
    const child = await spawnCli(runs);
    expect(child.code, child.stderr).toBe(0);
    const report = JSON.parse(child.stdout) as Array<RunResult & { argv: string[] }>;
    const byArgv = (argv: string[]) => report.find((r) => JSON.stringify(r.argv) === JSON.stringify(argv))!;

    const top = byArgv(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['demo', 'train', 'sample']) expect(top.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    for (const c of ['train', 'sample', 'demo']) {
      const r = byArgv([c, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: ferrogpt ${c}`);
      expect(r.stdout).toContain('--help');
      expect(r.stderr).toBe(''); // help loads no backend and says nothing else
    }
    expect(byArgv(['train', '--help']).stdout).toMatch(/--data PATH[\s\S]*--tokenizer[\s\S]*--preset[\s\S]*--resume/);
    expect(byArgv(['finetune', '--help']).stdout).toMatch(/--model DIR[\s\S]*--checkpoint-every N[\s\S]*--resume/);
    expect(byArgv(['sample', '--help']).stdout).toMatch(/--max-new-tokens[\s\S]*--temperature[\s\S]*--top-k[\s\S]*--num-samples/);
    expect(byArgv(['score', '--help']).stdout).toMatch(/--normalize HOW[\s\S]*unconditional[\s\S]*--answer-context TEXT/);
    expect(byArgv(['convert', '--help']).stdout).toMatch(/--model DIR[\s\S]*--dtype DTYPE[\s\S]*--out DIR/);
    expect(byArgv(['help', 'train']).stdout).toContain('Usage: ferrogpt train');
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(byArgv(['--version'])).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
    expect(byArgv([]).code).toBe(2);

    const usage: Array<[string[], RegExp]> = [
      [['bogus'], /unknown command "bogus"/],
      [['train', '--bogus'], /unknown option '--bogus'/],
      [['train', '--data', 'x.txt', '--steps', 'abc'], /--steps must be an integer >= 1, got "abc"/],
      [['train', '--data', 'x.txt', '--tokenizer', 'words'], /--tokenizer must be char, gpt2 or bpe:N/],
      [['train', '--data', 'x.txt', '--preset', 'huge'], /--preset must be one of tiny, small, gpt2-124m/],
      [['sample', '--model', 'm', '--temperature', 'hot'], /--temperature must be a number >= 0/],
      [['sample', '--prompt', 'hi'], /--model is required/],
      [['demo', '--minutes', '0'], /--minutes must be in \(0, 1440\]/],
      [['demo', '--minutes', '-1'], /option '--minutes' argument is ambiguous \(is its value missing\?/],
      [['train', '--data', 'x.txt', '--backend', 'gpu'], /--backend must be one of native, wasm, reference/],
      [['sample', 'extra-positional'], /unexpected argument "extra-positional"/],
      [['score', '--model', 'm', '--candidates', ' a', '--normalize', 'prior'], /--normalize must be one of none, token, char, unconditional, got "prior"/],
      [['score', '--model', 'm', '--candidates', ' a', '--answer-context', 'A:'], /--answer-context is used only with --normalize unconditional/],
      [['convert', '--model', 'm', '--out', 'n'], /--dtype is required \(f32, bf16, int8\)/],
      [['convert', '--model', 'm', '--dtype', 'int4', '--out', 'n'], /--dtype must be one of f32, bf16, int8, got "int4"/],
      [['convert', '--model', 'm', '--dtype', 'int8', '--out', 'm'], /--out must be another folder than --model/],
      [['sample', '--model', 'm', '--dtype', 'f16'], /--dtype must be one of f32, bf16, int8, got "f16"/],
      [['generate', '--model', 'm', '--kv-dtype', 'f16'], /--kv-dtype must be one of f32, bf16, got "f16"/],
    ];
    for (const [argv, message] of usage) {
      const r = byArgv(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr, argv.join(' ')).toMatch(message);
      expect(r.stderr).toMatch(/--help' for usage/);
    }
  });

  it('trains a tiny model, writes the model, tokenizer and loss.svg, resumes, then samples and scores from it', async () => {
    const out = join(dir, 'run');
    const args = ['train', '--data', join(dir, 'text.txt'), '--out', out, '--preset', 'tiny', '--batch', '2', '--eval-every', '1', '--seed', '7'];
    const r = await cli(...args, '--steps', '3');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^ferrogpt \S+ · backend \w+ \(simd [\w+-]+, \d+ threads?\)$/m);
    // not a TTY: plain progress lines, the last one at step 3
    expect(r.stderr).toMatch(/^step 3\/3 100% \| loss \d+\.\d+ \| val \d+\.\d+ \|/m);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'loss.svg', 'losses.json', 'run.json', 'checkpoint/trainer.json']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const tokenizer = JSON.parse(await readFile(join(out, 'tokenizer.json'), 'utf8')) as { model: { type: string } };
    expect(tokenizer.model.type).toBe('BPE'); // the char tokenizer is stored as a byte-fallback BPE
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, number>;
    expect(config).toMatchObject({ n_layer: 4, n_head: 4, n_embd: 128, n_positions: 64 });

    const svg = await readFile(join(out, 'loss.svg'), 'utf8');
    const elements = checkXml(svg);
    expect(elements[0]).toBe('svg');
    expect(elements.filter((e) => e === 'path').length).toBe(2); // train + val
    expect(svg).toMatch(/<path d="M[\d.]+,[\d.]+ L[\d.]+,[\d.]+ L[\d.]+,[\d.]+"/); // 3 train points

    // --resume continues from the checkpoint: settings come from run.json
    const resumed = await cli('train', '--out', out, '--resume', '--steps', '4');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/done at step 4\/4 \(1 updates/);
    const losses = JSON.parse(await readFile(join(out, 'losses.json'), 'utf8')) as { train: Array<{ step: number }> };
    expect(losses.train.map((p) => p.step)).toEqual([1, 2, 3, 4]);

    // sample from it (reproducible for a seed, streamed to stdout after the prompt), and score
    const sampleArgs = ['sample', '--model', out, '--prompt', 'The ', '--max-new-tokens', '30'];
    const runs = [
      [...sampleArgs, '--seed', '5'],
      [...sampleArgs, '--seed', '5'],
      [...sampleArgs, '--temperature', '0'],
      [...sampleArgs, '--seed', '5', '--num-samples', '2', '--top-k', '3'],
      ['score', '--model', out, '-c', 'It is a', '--candidates', ' truth', ' x', '--normalize', 'unconditional', '--answer-context', 'A:', '--json'],
      ['score', '--model', out, '-c', 'It is a', '--candidates', ' truth', ' x', '--normalize', 'unconditional'],
      // compact weights: a converted folder, and --dtype on the f32 one
      ['convert', '--model', out, '--dtype', 'int8', '--out', `${out}-int8`],
      ['sample', '--model', `${out}-int8`, '--prompt', 'The ', '--max-new-tokens', '30', '--temperature', '0'],
      [...sampleArgs, '--temperature', '0', '--dtype', 'bf16'],
      ['score', '--model', `${out}-int8`, '-c', 'It is a', '--candidates', ' truth', ' x', '--dtype', 'f32', '--json'],
      // a bf16 KV cache
      [...sampleArgs, '--temperature', '0', '--kv-dtype', 'bf16'],
      ['generate', '--model', out, '-p', 'The ', '-n', '12', '-t', '0', '--kv-dtype', 'bf16'],
      ['score', '--model', out, '-c', 'It is a', '--candidates', ' truth', ' x', '--kv-dtype', 'bf16', '--json'],
    ];
    const child = await spawnCli(runs);
    expect(child.code, child.stderr).toBe(0);
    const [a, b, greedy, two, scored, table, converted, greedyInt8, greedyBf16, scoredF32, sampleKv, generateKv, scoredKv] = JSON.parse(child.stdout) as RunResult[];
    for (const s of [a, b, greedy, two, scored, table, converted, greedyInt8, greedyBf16, scoredF32, sampleKv, generateKv, scoredKv]) expect(s.code, s.stderr).toBe(0);
    expect(sampleKv.stdout).toMatch(/^The [^]{30}\n$/u);
    expect(generateKv.stdout).toMatch(/^The [^]{0,12}\n$/u);
    const kvScores = (JSON.parse(scoredKv.stdout) as { candidates: Array<{ logProb: number }> }).candidates.map((c) => c.logProb);
    expect(kvScores.length).toBe(2);
    expect(kvScores.every(Number.isFinite)).toBe(true);
    expect(converted.stderr).toContain(`wrote ${out}-int8 (int8 weights)`);
    const int8 = (await readSafetensorsFile(join(`${out}-int8`, 'model.safetensors'))).tensors;
    expect(int8.get('transformer.h.0.mlp.c_fc.weight')!.dtype).toBe('I8');
    expect(existsSync(join(`${out}-int8`, 'tokenizer.json'))).toBe(true);
    for (const g of [greedyInt8, greedyBf16]) expect(g.stdout).toMatch(/^The [^]{30}\n$/u);
    expect((JSON.parse(scoredF32.stdout) as { candidates: unknown[] }).candidates.length).toBe(2);
    // score --normalize unconditional: score = logProb − unconditionalLogProb, also in the table
    const result = JSON.parse(scored.stdout) as { candidates: Array<{ logProb: number; unconditionalLogProb: number; score: number }> };
    for (const c of result.candidates) expect(c.score).toBeCloseTo(c.logProb - c.unconditionalLogProb, 12);
    for (const line of table.stdout.trim().split('\n')) {
      const [, scoreCol, logProb, unconditional] = line.split('\t').map(Number);
      expect(scoreCol).toBeCloseTo(logProb - unconditional, 3);
    }
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout.startsWith('The ')).toBe(true);
    // a char model: one character per token (sampling may stop early at <|endoftext|>)
    expect([...a.stdout].length).toBeLessThanOrEqual(4 + 30 + 1);
    expect(greedy.stdout).toMatch(/^The [^]{30}\n$/u);
    expect(two.stdout.split('\n').filter((l) => l.startsWith('The ')).length).toBe(2);
    expect(two.stderr).toContain('sample 2/2 (seed 6)');
  });

  it('train says what is wrong with a missing data file or a --resume without a run', async () => {
    const child = await spawnCli([
      ['train', '--data', join(dir, 'missing.txt'), '--out', join(dir, 'x'), '--steps', '1'],
      ['train', '--out', join(dir, 'nothing-here'), '--resume'],
    ]);
    const [missing, noRun] = JSON.parse(child.stdout) as RunResult[];
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ferrogpt: error: .*missing\.txt/);
    expect(noRun.code).toBe(2);
    expect(noRun.stderr).toMatch(/--resume: .* holds no run to resume/);
  });
});

describe('CLI pieces', () => {
  it('loss.svg is well-formed with ticks, labels and both curves', () => {
    const train = Array.from({ length: 2000 }, (_, i) => ({ step: i + 1, loss: 4 * Math.exp(-i / 300) + 1.2 }));
    const val = [{ step: 500, loss: 2 }, { step: 1000, loss: 1.6 }, { step: 2000, loss: 1.4 }];
    const svg = lossCurveSvg(train, val, 'a <title> & more');
    const names = checkXml(svg);
    expect(names.filter((n) => n === 'path').length).toBe(2);
    expect(names.filter((n) => n === 'circle').length).toBe(3 + 1); // val points + legend marker
    expect(svg).toContain('a &lt;title&gt; &amp; more');
    expect(svg).toMatch(/>step<\/text>/);
    expect(svg).toMatch(/>loss \(cross-entropy, nats\)<\/text>/);
    expect(svg).toMatch(/>2000<\/text>/); // an x tick at the last step
    // the train curve is averaged down to a bounded number of points
    const trainPath = /<path d="([^"]+)"/.exec(svg)![1];
    expect(trainPath.split(' ').length).toBeLessThanOrEqual(600);
    expect(() => checkXml(lossCurveSvg([], []))).not.toThrow();
  });

  it('nice ticks are round and cover the range', () => {
    expect(niceTicks(0, 100, 5)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(1.13, 4.71, 6)).toEqual([2, 3, 4]);
    expect(niceTicks(0.0012, 0.0049, 5)).toEqual([0.002, 0.003, 0.004]);
    expect(niceTicks(1, 3000, 8)).toEqual([500, 1000, 1500, 2000, 2500, 3000]);
  });

  it('progress: a live line fitted to the terminal, plain lines elsewhere', () => {
    const written: string[] = [];
    const stream = { write: (s: string) => (written.push(s), true), isTTY: false, columns: 0 } as unknown as NodeJS.WriteStream;
    const plain = new Progress({ total: 100, stream });
    for (let step = 1; step <= 100; step++) plain.update({ step, loss: 2, lr: 1e-3, gradNorm: 1, tokensPerSec: 1000, valLoss: step === 50 ? 1.9 : undefined });
    const lines = written.join('').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(20);
    expect(lines.length).toBeLessThanOrEqual(23); // ~20 periodic + the first + evaluations
    expect(lines[lines.length - 1]).toMatch(/^step 100\/100 100% \| loss 2\.0000 \| val 1\.9000 \| 1\.0k tok\/s \| \d+:\d\d total$/);

    const tty = new Progress({ total: 1000, stream: { ...stream, isTTY: true, columns: 80 } as unknown as NodeJS.WriteStream });
    const line = tty.line({ step: 250, loss: 1.5, lr: 1e-3, gradNorm: 1, tokensPerSec: 12345 }, 80);
    // eslint-disable-next-line no-control-regex
    const visible = line.replace(/\x1b\[[0-9;]*m/g, '');
    expect(visible.length).toBeLessThan(80);
    expect(visible).toMatch(/^step  250\/1000 [━╸─]+  25% │ loss 1\.5000 │/);
    expect(formatDuration(75)).toBe('1:15');
    expect(formatDuration(3725)).toBe('1:02:05');
  });
});
