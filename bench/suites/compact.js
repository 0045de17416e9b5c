// What compact weights cost in quality and save in memory (src/model/weights.ts):
// - quality: the `small` preset (6 layers, 384 wide, context 256) trained on the bundled
//   corpus for a few minutes with `ferrogpt train` (char tokenizer), then, on held-out text
//   (the last 8% of data/corpus.txt, inside the 10% train holds out), the perplexity with
//   the weights in f32, bf16 and int8, and the greedy agreement of bf16 and int8 with f32
//   over 200 tokens from a few prompts: free-running (the tokens equal f32's, position by
//   position, and the length of the common prefix) and teacher-forced (the argmax after
//   f32's own tokens equals f32's);
// - memory: the resident size (RSS) of a GPT-2-small-shape model in each dtype, loaded from
//   its folder in a fresh Node process, after a GC, less the RSS of the same process before
//   the load (backend loaded, and the load path warmed up on a tiny model), the same for the
//   first load in a process (no warm-up), and the whole process's RSS.
//
//   node bench/benchmark.js compact [--steps N] [--retrain] [--quick]   (npm run bench:compact)
//
// The trained model is kept in bench/data/compact-small-<steps>/ (git-ignored) and reused;
// --retrain trains it again. Writes bench/results/compact.json and compact.md.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { GPT2, argmax } from '../lib/decode.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.env.FERROGPT_BENCH_ROOT ?? join(here, '..', '..');
const imp = (rel) => import(pathToFileURL(join(root, 'dist', rel)).href);
const cli = join(root, 'dist', 'src', 'cli', 'index.js');
const DTYPES = ['f32', 'bf16', 'int8'];

function parse(argv) {
  const a = { steps: 250, retrain: false, quick: false, windows: 40, newTokens: 200 };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === 'compact') continue;
    if (s === '--steps') a.steps = Number(argv[++i]);
    else if (s === '--retrain') a.retrain = true;
    else if (s === '--quick') (a.quick = true), (a.steps = 30), (a.windows = 4), (a.newTokens = 40);
    else throw new Error(`unknown option ${s}`);
  }
  return a;
}

/** Trains the small preset with the CLI into `out` unless it is there already. */
function trainSmall(out, steps, retrain, log) {
  if (!retrain && existsSync(join(out, 'model.safetensors'))) {
    log(`model: ${relative(process.cwd(), out)} (trained before; --retrain to train again)`);
    return JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  }
  const args = [cli, 'train', '--data', join(root, 'data', 'corpus.txt'), '--tokenizer', 'char', '--preset', 'small', '--steps', String(steps), '--out', out, '--seed', '1337', '--eval-every', String(Math.max(1, Math.floor(steps / 4)))];
  log(`training: node ${args.map((x) => relative(process.cwd(), x) || x).join(' ')}`);
  const t = Date.now();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`ferrogpt train failed (exit ${r.status})`);
  log(`trained in ${((Date.now() - t) / 60e3).toFixed(1)} min`);
  return JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
}

/** Mean next-token loss over `windows` disjoint windows of T + 1 tokens of `ids`. */
function heldOutLoss(model, ids, T, windows) {
  let sum = 0;
  let n = 0;
  for (let w = 0; w < windows && (w + 1) * (T + 1) <= ids.length; w++) {
    const win = ids.subarray(w * (T + 1), (w + 1) * (T + 1));
    sum += model.evalLoss(win.subarray(0, T), win.subarray(1), 1, T) * T;
    n += T;
  }
  return sum / n;
}

/** Greedy tokens after `prompt` (KV-cached), and the argmax after each of `forced` tokens. */
function greedy(model, prompt, newTokens, forced) {
  const cache = model.createCache(1);
  let logits = model.forwardCached([prompt], cache);
  const free = [];
  for (let k = 0; k < newTokens; k++) {
    const next = argmax(logits);
    free.push(next);
    logits = model.forwardCached([[next]], cache);
  }
  cache.dispose();
  if (forced === undefined) return { free };
  const cache2 = model.createCache(1);
  const all = model.forwardCached([[...prompt, ...forced]], cache2, { logits: 'all' });
  cache2.dispose();
  const V = model.config.vocabSize;
  const teacher = [];
  for (let k = 0; k < forced.length; k++) teacher.push(argmax(all.subarray((prompt.length - 1 + k) * V, (prompt.length + k) * V)));
  return { free, teacher };
}

/**
 * RSS of a fresh process that loads `dir` in `dtype`: before the load, after it, and after
 * an 8-token forward pass (activations and scratch then exist too), each after a GC. With
 * `warm`, the process first loads, runs and disposes a tiny model of the same dtype, so that
 * what the load path costs once per process (its compiled code, V8's heap growing to run
 * it) is in `before` and the difference is the model's own memory.
 */
function rssOf(dir, dtype, warm, log) {
  const script = `
    const { GPT, initBackend } = await import(${JSON.stringify(pathToFileURL(join(root, 'dist', 'src', 'index.js')).href)});
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    await initBackend();
    const settle = async () => {
      for (let i = 0; i < 3; i++) globalThis.gc();
      await new Promise((r) => setTimeout(r, 200));
      globalThis.gc();
      return process.memoryUsage().rss;
    };
    if (${warm}) {
      const tmp = mkdtempSync(join(tmpdir(), 'ferrogpt-rss-'));
      const tiny = GPT.create({ vocabSize: 512, blockSize: 64, nLayer: 2, nHead: 4, nEmbd: 128, seed: 1 }).toDtype(${JSON.stringify(dtype)});
      await tiny.save(tmp);
      tiny.dispose();
      const again = await GPT.load(tmp, { dtype: ${JSON.stringify(dtype)} });
      again.forward(new Int32Array(8), 1, 8);
      again.dispose();
      rmSync(tmp, { recursive: true });
    }
    const before = await settle();
    const model = await GPT.load(${JSON.stringify(dir)}, { dtype: ${JSON.stringify(dtype)} });
    const loaded = await settle();
    model.forward(new Int32Array(8), 1, 8);
    const ran = await settle();
    console.log(JSON.stringify({ before, loaded, ran, dtype: model.dtype }));`;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`RSS child (${dtype}) failed: ${r.stderr.slice(-500)}`);
  const m = JSON.parse(r.stdout.trim().split('\n').pop());
  const mb = (x) => +(x / 1e6).toFixed(1);
  const row = { dtype, rssBeforeMB: mb(m.before), modelMB: mb(m.loaded - m.before), afterForwardMB: mb(m.ran - m.before), rssAfterMB: mb(m.ran) };
  log(`RSS ${dtype}${warm ? ' (after a warm-up load)' : ' (the first load in the process)'}: ${row.rssBeforeMB} MB before the load; the model ${row.modelMB} MB loaded, ${row.afterForwardMB} MB after a forward pass`);
  return row;
}

export async function main(argv) {
  const args = parse(argv);
  const log = (s) => console.log(s);
  const started = Date.now();
  const { GPT, Tokenizer, initBackend, backendInfo } = await imp('src/index.js');
  await initBackend();
  const env = { date: new Date().toISOString(), cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism?.() ?? os.cpus().length, node: process.version, backend: backendInfo(), loadAverageStart: os.loadavg().map((x) => +x.toFixed(2)) };
  log(`compact bench: ${env.cpu}, ${env.cores} cores, backend ${env.backend.name} (${env.backend.simd}, ${env.backend.threads} threads)`);

  // ---- quality ----
  const dataDir = join(root, 'bench', 'data');
  const out = join(dataDir, `compact-small-${args.steps}`);
  const run = trainSmall(out, args.steps, args.retrain, log);
  const tokenizer = await Tokenizer.load(join(out, 'tokenizer.json'));
  const text = readFileSync(join(root, 'data', 'corpus.txt'), 'utf8');
  const held = text.slice(Math.floor(text.length * 0.92));
  const ids = Int32Array.from(tokenizer.encode(held));
  const prompts = [0.1, 0.3, 0.5, 0.7, 0.9].map((f) => Array.from(ids.subarray(Math.floor(f * (ids.length - 400)), Math.floor(f * (ids.length - 400)) + 32)));
  const quality = [];
  let reference = null;
  for (const dtype of DTYPES) {
    const model = await GPT.load(out, { dtype });
    const T = model.config.blockSize;
    const loss = heldOutLoss(model, ids, T, args.windows);
    const gens = prompts.map((p, i) => greedy(model, p, args.newTokens, reference?.[i].free));
    if (dtype === 'f32') reference = gens;
    const row = { dtype, loss: +loss.toFixed(5), perplexity: +Math.exp(loss).toFixed(4), tokens: args.windows * T };
    if (dtype !== 'f32') {
      const f32 = quality[0];
      row.pplVsF32 = +(row.perplexity / f32.perplexity - 1).toFixed(5);
      let same = 0;
      let forcedSame = 0;
      const prefixes = [];
      gens.forEach((g, i) => {
        const want = reference[i].free;
        const prefix = want.findIndex((t, k) => g.free[k] !== t);
        prefixes.push(prefix < 0 ? want.length : prefix);
        same += want.filter((t, k) => g.free[k] === t).length;
        forcedSame += want.filter((t, k) => g.teacher[k] === t).length;
      });
      const total = prompts.length * args.newTokens;
      row.freeAgreement = +(same / total).toFixed(4);
      row.commonPrefix = prefixes;
      row.teacherForcedAgreement = +(forcedSame / total).toFixed(4);
    }
    quality.push(row);
    log(`${dtype}: held-out loss ${row.loss}, perplexity ${row.perplexity}${row.pplVsF32 === undefined ? '' : ` (${(100 * row.pplVsF32).toFixed(2)}% vs f32), greedy agreement free-running ${(100 * row.freeAgreement).toFixed(1)}% (common prefixes ${row.commonPrefix.join(', ')}), teacher-forced ${(100 * row.teacherForcedAgreement).toFixed(1)}%`}`);
    model.dispose();
  }

  // ---- memory ----
  const shape = args.quick ? { vocabSize: 512, blockSize: 256, nLayer: 2, nHead: 4, nEmbd: 128 } : GPT2;
  const memory = [];
  const folders = {};
  const base = join(dataDir, `compact-mem-${shape.nLayer}L${shape.nEmbd}d-V${shape.vocabSize}`);
  for (const dtype of DTYPES) {
    folders[dtype] = `${base}-${dtype}`;
    if (!existsSync(join(folders[dtype], 'model.safetensors'))) {
      const m = GPT.create({ ...shape, seed: 1 });
      m.toDtype(dtype);
      await m.save(folders[dtype]);
      m.dispose();
    }
  }
  for (const dtype of DTYPES) {
    const row = rssOf(folders[dtype], dtype, true, log);
    const cold = rssOf(folders[dtype], dtype, false, log);
    memory.push({ ...row, firstLoad: { rssBeforeMB: cold.rssBeforeMB, modelMB: cold.modelMB, afterForwardMB: cold.afterForwardMB } });
  }
  for (const m of memory) {
    m.vsF32 = +(m.modelMB / memory[0].modelMB).toFixed(3);
    m.afterForwardVsF32 = +(m.afterForwardMB / memory[0].afterForwardMB).toFixed(3);
    m.firstLoad.vsF32 = +(m.firstLoad.modelMB / memory[0].firstLoad.modelMB).toFixed(3);
  }

  env.loadAverageEnd = os.loadavg().map((x) => +x.toFixed(2));
  env.wallSeconds = +((Date.now() - started) / 1e3).toFixed(1);
  const doc = { suite: 'compact', env, train: { steps: args.steps, preset: 'small', run: { settings: run.settings ?? run } }, quality, memory, shape };
  const md = render(doc);
  log('\n' + md);
  const resDir = join(here, '..', 'results');
  mkdirSync(resDir, { recursive: true });
  const name = args.quick ? 'compact.partial' : 'compact';
  writeFileSync(join(resDir, `${name}.json`), JSON.stringify(doc, null, 2) + '\n');
  if (!args.quick) writeFileSync(join(resDir, 'compact.md'), md);
}

function render(doc) {
  const { env, quality, memory, shape } = doc;
  const pct = (x, d = 2) => (x === undefined ? '' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(d)}%`);
  return [
    '# Compact weights: quality and memory',
    '',
    `${env.cpu}, ${env.cores} cores, backend ${env.backend.name} (${env.backend.simd}), Node ${env.node}; ${env.date}.`,
    '',
    `## Quality: the small preset (6 layers, 384 wide, context 256), ${doc.train.steps} updates of \`ferrogpt train --tokenizer char --preset small\` on data/corpus.txt`,
    '',
    `Held-out text: the last 8% of the corpus (inside the 10% train held out), ${quality[0].tokens} tokens in windows of the context. Greedy agreement: 5 prompts of 32 held-out tokens, the next tokens decoded greedily; free-running = the share of positions whose token equals f32's (and the common prefix of each sequence with f32's, in tokens), teacher-forced = the share of positions where the argmax after f32's own tokens equals f32's.`,
    '',
    '| dtype | held-out loss | perplexity | vs f32 | greedy agreement (free-running) | common prefix per prompt | teacher-forced agreement |',
    '|---|---:|---:|---:|---:|---|---:|',
    ...quality.map((q) => `| ${q.dtype} | ${q.loss} | ${q.perplexity} | ${pct(q.pplVsF32)} | ${q.freeAgreement === undefined ? '' : (100 * q.freeAgreement).toFixed(1) + '%'} | ${q.commonPrefix?.join(', ') ?? ''} | ${q.teacherForcedAgreement === undefined ? '' : (100 * q.teacherForcedAgreement).toFixed(1) + '%'} |`),
    '',
    `## Memory: a ${shape.nLayer}-layer, ${shape.nEmbd}-wide model (V ${shape.vocabSize}) loaded from its folder in a fresh process`,
    '',
    'Resident size (RSS) after a GC, less the same process before the load: once loaded, and after an 8-token forward pass (its activations and scratch too). Before the load, Node and the backend are loaded and a tiny model of the same dtype has been saved, loaded, run and disposed, so that what the load path costs once per process (its compiled code, V8\'s heap growing to run it) is not counted as the model. The last columns are the first load in a process without that warm-up.',
    '',
    '| dtype | process RSS before MB | model loaded MB | vs f32 | after a forward pass MB | vs f32 | first load in the process MB | vs f32 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...memory.map((m) => `| ${m.dtype} | ${m.rssBeforeMB} | ${m.modelMB} | ${m.vsF32}× | ${m.afterForwardMB} | ${m.afterForwardVsF32}× | ${m.firstLoad.modelMB} | ${m.firstLoad.vsF32}× |`),
    '',
  ].join('\n');
}
