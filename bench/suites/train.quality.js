// Training quality: the nanoGPT CPU configuration (4 layers, 4 heads, 128 dims, block 64,
// batch 12) trained character-level on data/corpus.txt for 2000 iterations in ferrogpt and
// in PyTorch (bench/torch_train.py), from the SAME initial weights, on the SAME batches,
// with the SAME learning rates, and both evaluated on the SAME 50 validation batches.
//
//   node bench/benchmark.js quality [--iters 2000] [--threads 1] [--eval-every 250]
//                                   [--val-batches 50] [--no-torch-own-init] [--precision bf16]
//   (npm run bench:quality)
//
// Data as nanoGPT's shakespeare_char/prepare.py: the vocabulary is the corpus's distinct
// characters, sorted (ids 0..V-1; NOT src/tokenizer's 'char' type, which adds 256
// byte-fallback ids), the first 90% of the text is train and the rest val. Every batch row is
// a random window data[i .. i+T] (inputs i..i+T-1, targets i+1..i+T), i drawn in Node from
// one seeded generator and handed to both frameworks. Optimisation: AdamW β (0.9, 0.99),
// eps 1e-8, weight decay 0.1 on tensors of rank ≥ 2 (wte, wpe, linear weights), global
// grad-norm clip 1.0, lr: linear warmup 100 to 1e-3, cosine to 1e-4 at 2000 (ferrogpt's
// learningRate, computed once here and passed to PyTorch). Dropout 0.
//
// A second PyTorch run starts from PyTorch's own (nanoGPT) initialisation with a
// different seed, which shows how much the final loss moves with the initial weights
// alone: the scale against which the ferrogpt–PyTorch difference should be read.
//
// --precision bf16 adds a ferrogpt run in bf16 mixed precision (train's `precision: 'bf16'`:
// the matmuls on bf16 weights and activations, f32 master weights and optimizer) from the same
// initial weights on the same batches, next to the f32 one.
//
// Writes bench/results/quality.json (git-ignored) and bench/results/quality.md.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { mulberry32 } from '../lib/rng.js';
import { baseEnv, ensurePyTorch, ferroStep, loadLib, root, torchRunAsync, writeResults } from './train.js';

const MODEL = { vocabSize: 0, blockSize: 64, nLayer: 4, nHead: 4, nEmbd: 128 };
const BATCH = 12;
const OPT = { lr: 1e-3, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 };
const SCHEDULE = { kind: 'cosine', maxLr: 1e-3, warmupSteps: 100, minLr: 1e-4 };
const CLIP = 1.0;

function parseArgs(argv) {
  const a = { iters: 2000, threads: 1, evalEvery: 250, valBatches: 50, torchOwnInit: true, seed: 1337, install: true, precision: 'f32' };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === '--iters') a.iters = Number(argv[++i]);
    else if (s === '--threads') a.threads = Number(argv[++i]);
    else if (s === '--eval-every') a.evalEvery = Number(argv[++i]);
    else if (s === '--val-batches') a.valBatches = Number(argv[++i]);
    else if (s === '--no-torch-own-init') a.torchOwnInit = false;
    else if (s === '--seed') a.seed = Number(argv[++i]);
    else if (s === '--quick') (a.iters = 200), (a.evalEvery = 100), (a.valBatches = 10);
    else if (s === '--no-install') a.install = false;
    else if (s === '--precision') a.precision = argv[++i];
    else if (s === '-h' || s === '--help') {
      console.log('usage: node bench/benchmark.js quality [--iters 2000] [--threads 1] [--eval-every 250] [--val-batches 50] [--no-torch-own-init] [--precision bf16] [--quick] [--no-install]');
      process.exit(0);
    } else if (s.startsWith('-')) throw new Error(`unknown option ${s}`);
  }
  if (!['f32', 'bf16'].includes(a.precision)) throw new Error(`--precision must be f32 or bf16, got ${a.precision}`);
  return a;
}

/** Character-level encoding, as nanoGPT's shakespeare_char/prepare.py. */
function encodeCorpus(text) {
  const chars = [...new Set(text)].sort();
  const stoi = new Map(chars.map((c, i) => [c, i]));
  const data = new Int32Array(text.length);
  let i = 0;
  for (const ch of text) data[i++] = stoi.get(ch);
  return { chars, data: data.subarray(0, i) };
}

/** `rows` window starts uniform in [lo, hi), from one seeded generator. */
function offsets(rng, rows, lo, hi) {
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) out[i] = lo + Math.floor(rng() * (hi - lo));
  return out;
}

function batchAt(data, offs, row, B, T) {
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const o = offs[row * B + b];
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = data[o + t];
      targets[b * T + t] = data[o + t + 1];
    }
  }
  return { ids, targets };
}

/** Mean cross-entropy (float64) of the logits (B·T, V) at the targets. */
function crossEntropy(logits, targets, V) {
  let sum = 0;
  for (let n = 0; n < targets.length; n++) {
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[n * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[n * V + v] - mx);
    sum += Math.log(s) + mx - logits[n * V + targets[n]];
  }
  return sum / targets.length;
}

export async function main(argv, log) {
  const args = parseArgs(argv);
  ensurePyTorch(log, args.install);
  const started = Date.now();
  const lib = await loadLib();
  lib.backend.setThreads(args.threads);
  const env = { ...baseEnv(lib), threads: args.threads };

  const text = readFileSync(join(root, 'data/corpus.txt'), 'utf8');
  const { chars, data } = encodeCorpus(text);
  const V = chars.length;
  const nTrain = Math.floor(data.length * 0.9);
  const B = BATCH;
  const T = MODEL.blockSize;
  const model = { ...MODEL, vocabSize: V };
  log(`corpus: ${data.length} chars, vocabulary ${V}, train ${nTrain}, val ${data.length - nTrain}`);

  const rng = mulberry32(args.seed);
  const trainOffs = offsets(rng, args.iters * B, 0, nTrain - T); // windows inside train
  const valOffs = offsets(rng, args.valBatches * B, nTrain, data.length - T); // windows inside val
  const lrs = Array.from({ length: args.iters }, (_, it) => lib.learningRate(it, { ...SCHEDULE, totalSteps: args.iters }));

  const gpt = lib.GPT.create({ ...model, dropout: 0, seed: args.seed }, lib.backend);
  const { backend, params } = gpt.parameterBuffers();
  const init = backend.read(params);

  const dir = mkdtempSync(join(os.tmpdir(), 'ferrogpt-quality-'));
  const file = (name, arr) => {
    const p = join(dir, name);
    writeFileSync(p, Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));
    return p;
  };
  const job = {
    model,
    batch: B,
    threads: args.threads,
    iters: args.iters,
    evalEvery: args.evalEvery,
    valBatches: args.valBatches,
    clip: CLIP,
    lrs,
    optim: OPT,
    data: file('data.i32', data),
    dataLen: data.length,
    trainOffsets: file('train.i32', trainOffs),
    valOffsets: file('val.i32', valOffs),
    initWeights: file('init.f32', init),
    seed: args.seed,
  };
  // PyTorch trains in child processes while ferrogpt trains here (each on `threads`
  // threads): speed is not measured in this suite, only losses.
  log(`PyTorch (same init) and ferrogpt: ${args.iters} iterations each, in parallel, ${args.threads} thread(s) each`);
  const torchSame = torchRunAsync('quality', job, args.threads, log);
  const torchOwn = args.torchOwnInit ? torchSame.then(() => torchRunAsync('quality', { ...job, initWeights: null, seed: args.seed + 1 }, args.threads, log)) : null;

  /** ferrogpt from the initial weights on the batches above, at `precision`. */
  const runFerro = (precision) => {
    const m = lib.GPT.create({ ...model, dropout: 0, seed: args.seed }, lib.backend);
    m.loadParameters(gpt.namedParameters().map(([n, p]) => [n, p.data()]));
    const o = new lib.AdamW(m, OPT);
    m.precision = precision;
    const valLoss = () => {
      let tot = 0;
      for (let j = 0; j < args.valBatches; j++) {
        const { ids, targets } = batchAt(data, valOffs, j, B, T);
        tot += crossEntropy(m.forward(ids, B, T), targets, V);
      }
      return tot / args.valBatches;
    };
    const evals = [];
    const trainLosses = [];
    const t0 = performance.now();
    for (let it = 0; it < args.iters; it++) {
      if (it % args.evalEvery === 0) {
        evals.push({ iter: it, val: valLoss() });
        log(`ferrogpt ${precision} iter ${it}: val ${evals.at(-1).val.toFixed(4)}${it ? `, train (last 50) ${mean(trainLosses.slice(-50)).toFixed(4)}` : ''}`);
      }
      o.setLr(lrs[it]);
      const { ids, targets } = batchAt(data, trainOffs, it, B, T);
      trainLosses.push(ferroStep(lib, m, o, ids, targets, B, T, CLIP));
    }
    const seconds = (performance.now() - t0) / 1e3;
    evals.push({ iter: args.iters, val: valLoss() });
    o.dispose();
    m.dispose();
    log(`ferrogpt ${precision} final val ${evals.at(-1).val.toFixed(4)} (${seconds.toFixed(1)} s)`);
    return { precision, train_losses: trainLosses, evals, final_val: evals.at(-1).val, seconds };
  };
  const ferro = runFerro('f32');
  const ferroBf16 = args.precision === 'bf16' ? runFerro('bf16') : null;
  const torch = await torchSame;
  log(`PyTorch (same init) final val ${torch.error ?? torch.final_val.toFixed(4)}`);
  const own = torchOwn ? await torchOwn : null;
  if (own) log(`PyTorch (own init, seed ${args.seed + 1}) final val ${own.error ?? own.final_val.toFixed(4)}`);
  rmSync(dir, { recursive: true, force: true });

  env.loadAverageEnd = os.loadavg().map((x) => +x.toFixed(2));
  env.wallSeconds = +((Date.now() - started) / 1e3).toFixed(1);
  const doc = {
    suite: 'quality',
    env,
    setup: { corpus: 'data/corpus.txt', vocabSize: V, chars: chars.join(''), trainChars: nTrain, valChars: data.length - nTrain, model, batch: B, iters: args.iters, optim: OPT, schedule: { ...SCHEDULE, totalSteps: args.iters }, clip: CLIP, dropout: 0, valBatches: args.valBatches, seed: args.seed },
    ferrogpt: ferro,
    ferrogptBf16: ferroBf16,
    torch,
    torchOwnInit: own,
  };
  writeResults('quality', doc, renderQuality(doc), log);
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const f4 = (x) => (x == null || !Number.isFinite(x) ? 'n/a' : x.toFixed(4));

export function renderQuality(doc) {
  const { env, setup, ferrogpt: f, torch: t, torchOwnInit: o } = doc;
  const ok = (r) => r && !r.error;
  const L = [];
  L.push('# ferrogpt training quality vs PyTorch');
  L.push('');
  L.push(`Generated by \`npm run bench:quality\` (bench/benchmark.js quality) on ${env.date}; ferrogpt ${env.ferrogpt} (${env.commit ?? 'n/a'}) native ${env.native.simd}, PyTorch ${env.torch ?? 'n/a'}; ${env.threads} thread(s) each; whole run ${env.wallSeconds} s.`);
  L.push('');
  L.push(`Character-level ${setup.corpus} (vocabulary of its ${setup.vocabSize} distinct characters, 90/10 split: ${setup.trainChars} / ${setup.valChars} chars). Model ${setup.model.nLayer} layers, ${setup.model.nHead} heads, ${setup.model.nEmbd} dims, block ${setup.model.blockSize}, batch ${setup.batch}, dropout 0. ${setup.iters} iterations of AdamW (β ${setup.optim.betas.join('/')}, eps ${setup.optim.eps}, weight decay ${setup.optim.weightDecay} on rank ≥ 2 tensors), clip ${setup.clip}, lr warmup ${setup.schedule.warmupSteps} to ${setup.schedule.maxLr}, cosine to ${setup.schedule.minLr}. Both frameworks start from ferrogpt's initial weights and see the same batches (seeded offsets generated once in Node) and the same learning rates; validation loss is the mean over the same ${setup.valBatches} fixed batches (${setup.valBatches * setup.batch * setup.model.blockSize} tokens).`);
  L.push('');
  L.push('| | ferrogpt | PyTorch (same init) | difference | PyTorch (own init, other seed) |');
  L.push('|---|--:|--:|--:|--:|');
  const d = (a, b) => (a != null && b != null ? (Math.abs(a - b) < 1e-4 ? (a - b).toExponential(1) : (a - b).toFixed(4)) : 'n/a');
  L.push(`| final val loss | ${f4(f.final_val)} | ${ok(t) ? f4(t.final_val) : `error: ${t?.error}`} | ${ok(t) ? d(f.final_val, t.final_val) : 'n/a'} | ${ok(o) ? f4(o.final_val) : o ? `error: ${o.error}` : 'not run'} |`);
  const last = (r) => (ok(r) ? mean(r.train_losses.slice(-100)) : null);
  L.push(`| train loss, mean of last 100 iterations | ${f4(last(f))} | ${f4(last(t))} | ${d(last(f), last(t))} | ${f4(last(o))} |`);
  L.push(`| train loss at iteration 0 | ${f4(f.train_losses[0])} | ${ok(t) ? f4(t.train_losses[0]) : 'n/a'} | ${ok(t) ? d(f.train_losses[0], t.train_losses[0]) : 'n/a'} | ${ok(o) ? f4(o.train_losses[0]) : 'n/a'} |`);
  L.push(`| training time (s; both ran at once, not a speed measurement) | ${f.seconds.toFixed(1)} | ${ok(t) ? t.seconds.toFixed(1) : 'n/a'} | | ${ok(o) ? o.seconds.toFixed(1) : 'n/a'} |`);
  L.push('');
  L.push('Validation loss during training:');
  L.push('');
  L.push('| iteration | ferrogpt | PyTorch (same init) | difference | PyTorch (own init) |');
  L.push('|--:|--:|--:|--:|--:|');
  f.evals.forEach((e, i) => {
    const te = ok(t) ? t.evals[i]?.val : null;
    const oe = ok(o) ? o.evals[i]?.val : null;
    L.push(`| ${e.iter} | ${f4(e.val)} | ${f4(te)} | ${d(e.val, te)} | ${f4(oe)} |`);
  });
  L.push('');
  if (ok(t)) {
    const diff = Math.abs(f.final_val - t.final_val);
    const maxTrain = Math.max(...f.train_losses.map((x, i) => Math.abs(x - t.train_losses[i])));
    L.push(`Largest |ferrogpt − PyTorch| training loss over all ${f.train_losses.length} iterations: ${maxTrain.toExponential(1)}.`);
    L.push('');
    L.push(diff <= 0.03 ? `ferrogpt and PyTorch agree: final validation losses differ by ${diff < 1e-4 ? diff.toExponential(1) : diff.toFixed(4)} (acceptance: within a few hundredths).` : `**ferrogpt and PyTorch differ by ${diff.toFixed(4)} in final validation loss** (acceptance: within a few hundredths).`);
    L.push('');
  }
  const b = doc.ferrogptBf16;
  if (b) {
    const diff = b.final_val - f.final_val;
    L.push(`## bf16 mixed precision (\`--precision bf16\`)`);
    L.push('');
    L.push('ferrogpt again from the same initial weights on the same batches, with `precision: \'bf16\'` (the matmuls on bf16 weights and activations with f32 accumulation; master weights, gradients, AdamW, LayerNorm, softmax and attention in f32).');
    L.push('');
    L.push('| iteration | f32 val loss | bf16 val loss | bf16 − f32 |');
    L.push('|--:|--:|--:|--:|');
    f.evals.forEach((e, i) => L.push(`| ${e.iter} | ${f4(e.val)} | ${f4(b.evals[i]?.val)} | ${d(b.evals[i]?.val, e.val)} |`));
    L.push('');
    L.push(`Final validation loss: bf16 ${f4(b.final_val)} vs f32 ${f4(f.final_val)}, a difference of ${diff.toFixed(4)} (target: within 0.02). Time: bf16 ${b.seconds.toFixed(1)} s, f32 ${f.seconds.toFixed(1)} s (PyTorch ran beside the f32 run; bf16 ran after: not a speed comparison).`);
    L.push('');
  }
  return L.join('\n');
}
