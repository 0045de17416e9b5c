// Fine-tuning on real text: GPT-1's Table 5 ablation in miniature, next to GPT-2/GPT-3
// prompting of the same model and to LoRA.
//
//   node bench/benchmark.js finetune [--quick] [--pretrain-steps 3000] [--epochs 3]
//                                    [--tasks ending-choice,ending-pair,sentiment]
//                                    [--threads N] [--seed 1337] [--render]
//   (npm run bench:finetune)
//
//   Other fine-tuning seeds on the same models (the spread of training):
//   node bench/benchmark.js finetune --models DIR ...          pre-train once, keep the models in DIR
//   node bench/benchmark.js finetune --models DIR --finetune-seed 1 --conditions a,c \
//        --tasks ending-choice,ending-pair --no-prompting --name finetune.seed1
//   node bench/benchmark.js finetune --render                  finetune.md with an "across seeds" section
//
// 1. Pre-training: a byte-level BPE of 1024 tokens and a 4-layer, 4-head, 128-dim GPT-2-style
//    model (block 128, dropout 0.1) trained with L1 on the first 70% of data/corpus.txt
//    (Jane Austen). The rest is held out: pre-training never sees it.
// 2. Tasks (bench/lib/ending-tasks.js, bench/fetch-sentiment.js), none written by us:
//    - ending-choice (multiple choice, 4-way): the beginning of a held-out sentence, its true
//      ending and three endings of other held-out sentences (SWAG's construction);
//    - ending-pair (entailment, 2-way): a beginning and an ending: its own, or another's;
//    - sentiment (classification, 2-way): "Sentiment Labelled Sentences" (UCI; Amazon, IMDb
//      and Yelp reviews), from the npm package `sentiment`: another author, another domain.
// 3. Fine-tuning, each run in a child process (bench/lib/finetune-child.js) at the LIBRARY'S
//    DEFAULTS (no lr, warmup or batch passed), the same budget (--epochs) for every row:
//      (a) pre-trained, L3 = L2 + 0.5·L1          (b) pre-trained, L2 only (λ = 0)
//      (c) random init (the weights pre-training started from), L3 with λ = 0.5
//      (d) pre-trained, LoRA rank 8 (adapters and head only), λ = 0.5
//      (e) pre-trained, GPT-1's recipe as published (preset 'gpt1': lr 6.25e-5, batch 32)
//    Accuracy ± one standard error (binomial, sqrt(p(1-p)/n)), per epoch; trainable
//    parameters, peak memory (the child's maxRSS) and the median time per update.
// 4. Prompting the same models on ending-choice and sentiment, no gradient updates:
//    zero-shot with the total log-likelihood, per token, and GPT-3's unconditional
//    normalisation (ending-choice: answer context end-of-text and "Answer:"; sentiment: the
//    template's "Sentiment:" cue), and few-shot (3 and 4 demonstrations, as many as fit in
//    the block). The random-init model's figures are the floor.
//
// Writes bench/results/finetune.json (git-ignored) and bench/results/finetune.md. --quick
// (a few steps each) checks the harness; --render rewrites the .md from the .json.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { PACKAGE_DIR, fetchSentiment } from '../fetch-sentiment.js';
import { endingTasks, splitCorpus } from '../lib/ending-tasks.js';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');
// FERROGPT_BENCH_ROOT: benchmark another build (its dist/), as the other suites.
const root = process.env.FERROGPT_BENCH_ROOT ?? join(benchDir, '..');

const MODEL = { blockSize: 128, nLayer: 4, nHead: 4, nEmbd: 128, dropout: 0.1 };
const VOCAB = 1024;
const TASKS = ['ending-choice', 'ending-pair', 'sentiment'];
const CONDITIONS = [
  { key: 'a', name: '(a) pre-trained, L3 (λ = 0.5)', model: 'pretrained', options: { lambda: 0.5 } },
  { key: 'b', name: '(b) pre-trained, L2 only (λ = 0)', model: 'pretrained', options: { lambda: 0 } },
  { key: 'c', name: '(c) random init, L3 (λ = 0.5)', model: 'random', options: { lambda: 0.5 } },
  { key: 'd', name: '(d) pre-trained, LoRA r 8, L3 (λ = 0.5)', model: 'pretrained', options: { lambda: 0.5, lora: { rank: 8 } } },
  { key: 'e', name: "(e) pre-trained, GPT-1's recipe (preset gpt1: lr 6.25e-5, batch 32)", model: 'pretrained', options: { preset: 'gpt1' } },
];

function parseArgs(argv) {
  const a = { render: false, quick: false, pretrainSteps: 3000, epochs: 3, tasks: TASKS, threads: null, seed: 1337, finetuneSeed: null, models: null, conditions: CONDITIONS.map((c) => c.key), prompting: true, name: null };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === 'finetune') continue;
    if (s === '--quick') a.quick = true;
    else if (s === '--render') a.render = true;
    else if (s === '--pretrain-steps') a.pretrainSteps = Number(argv[++i]);
    else if (s === '--epochs') a.epochs = Number(argv[++i]);
    else if (s === '--tasks') a.tasks = argv[++i].split(',');
    else if (s === '--threads') a.threads = Number(argv[++i]);
    else if (s === '--seed') a.seed = Number(argv[++i]);
    else if (s === '--finetune-seed') a.finetuneSeed = Number(argv[++i]);
    else if (s === '--models') a.models = argv[++i];
    else if (s === '--conditions') a.conditions = argv[++i].split(',');
    else if (s === '--no-prompting') a.prompting = false;
    else if (s === '--name') a.name = argv[++i];
    else if (s === '-h' || s === '--help') {
      console.log('usage: node bench/benchmark.js finetune [--quick] [--pretrain-steps 3000] [--epochs 3] [--tasks ending-choice,ending-pair,sentiment] [--threads N] [--seed 1337] [--finetune-seed N] [--models DIR] [--conditions a,c] [--no-prompting] [--name finetune.X] [--render]');
      process.exit(0);
    } else throw new Error(`unknown option ${s}`);
  }
  for (const t of a.tasks) if (!TASKS.includes(t)) throw new Error(`--tasks: unknown task ${t} (use ${TASKS.join(', ')})`);
  for (const k of a.conditions) if (!CONDITIONS.some((c) => c.key === k)) throw new Error(`--conditions: unknown condition ${k} (use ${CONDITIONS.map((c) => c.key).join(',')})`);
  if (a.name !== null && !/^finetune\.[a-z0-9-]+$/.test(a.name)) throw new Error('--name must look like finetune.<word> (e.g. finetune.seed1)');
  for (const k of ['pretrainSteps', 'epochs']) if (!(Number.isInteger(a[k]) && a[k] > 0)) throw new Error(`--${k} must be a positive integer`);
  return a;
}

const readJsonl = (path) => readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const pct = (x) => (x === undefined || x === null || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const se = (p, n) => Math.sqrt((p * (1 - p)) / n);
const pm = (p, n) => `${(100 * p).toFixed(1)} ± ${(100 * se(p, n)).toFixed(1)}`;

/** The sentiment task's no-learning references: majority class and the AFINN lexicon scorer. */
function sentimentReferences(train, valid) {
  const pos = train.filter((e) => e.label === '1').length;
  const majority = pos * 2 >= train.length ? '1' : '0';
  const acc = (pred) => valid.filter((e, i) => pred[i] === e.label).length / valid.length;
  const Sentiment = createRequire(join(PACKAGE_DIR, 'package.json'))('./lib/index.js');
  const scorer = new Sentiment();
  const afinn = valid.map((e) => {
    const s = scorer.analyze(e.text).score;
    return s > 0 ? '1' : s < 0 ? '0' : majority;
  });
  return [
    { name: `majority class ("${majority}")`, accuracy: acc(valid.map(() => majority)) },
    { name: 'AFINN lexicon (`sentiment` package), no training', accuracy: acc(afinn) },
  ];
}

/**
 * Zero-shot and few-shot prompting of one model on a task, no gradient updates. ending-choice:
 * each ending scored as the beginning's continuation. sentiment: the review in a template,
 * "negative" / "positive" scored after its "Sentiment:" cue. Demonstrations are the first
 * training examples (for sentiment, two of each class); fewShot drops those that do not fit
 * in the block.
 */
async function prompting(lib, model, tokenizer, taskName, task, quick) {
  const valid = quick ? task.validation.slice(0, 24) : task.validation;
  const rows = [];
  const tally = async (name, predict, few = false) => {
    let right = 0;
    let shots = 0;
    for (const e of valid) {
      const r = await predict(e);
      if (r.index === gold(e)) right++;
      shots += r.demonstrations ?? 0;
    }
    rows.push({ name, accuracy: right / valid.length, n: valid.length, ...(few ? { meanDemonstrations: shots / valid.length } : {}) });
  };
  let gold;
  if (taskName === 'ending-choice') {
    gold = (e) => e.label;
    const cands = (e) => e.choices.map((c) => ' ' + c);
    const byScore = (opts) => async (e) => ({ index: (await lib.score(model, tokenizer, e.context, cands(e), opts)).best });
    await tally('zero-shot, total log-likelihood', byScore({}));
    await tally('zero-shot, per token', byScore({ normalize: 'token' }));
    await tally('zero-shot, unconditional (answer context: end-of-text)', byScore({ normalize: 'unconditional', answerContext: '' }));
    await tally('zero-shot, unconditional (answer context "Answer:")', byScore({ normalize: 'unconditional', answerContext: 'Answer:' }));
    const examples = task.train.slice(0, 3).map((e) => ({ input: e.context, output: e.choices[e.label] }));
    const template = { instruction: '', example: '{input} {output}', separator: '\n' };
    const few = (normalize, answerContext) => (e) => lib.fewShot({ model, tokenizer, examples, query: e.context, labels: e.choices, template, normalize, answerContext });
    await tally('few-shot (3 demonstrations), total log-likelihood', few('none'), true);
    await tally('few-shot (3 demonstrations), unconditional (end-of-text)', few('unconditional', ''), true);
  } else if (taskName === 'sentiment') {
    const labels = ['negative', 'positive'];
    gold = (e) => Number(e.label);
    const template = { instruction: '{instruction}', example: 'Review: {input}\nSentiment: {output}', separator: '\n\n' };
    const instruction = 'Is each review positive or negative?';
    // A review longer than the block leaves (fine-tuning truncates the same way) is cut to its
    // first MAX_REVIEW tokens, so every query fits with the instruction and an answer.
    const MAX_REVIEW = 80;
    const fit = (text) => {
      let ids = tokenizer.encode(text);
      let cut = text;
      // Decoding a cut can re-encode a token longer (a merge across the cut): cut again.
      for (let keep = MAX_REVIEW; ids.length > MAX_REVIEW; keep--) {
        cut = tokenizer.decode(tokenizer.encode(text).slice(0, keep));
        ids = tokenizer.encode(cut);
      }
      return cut;
    };
    const zero = (normalize) => (e) => lib.zeroShot({ model, tokenizer, instruction, input: fit(e.text), labels, template, normalize });
    await tally('zero-shot, total log-likelihood', zero('none'));
    await tally('zero-shot, per token', zero('token'));
    await tally('zero-shot, unconditional (answer context "Sentiment:")', zero('unconditional'));
    const pos = task.train.filter((e) => e.label === '1').slice(0, 2);
    const neg = task.train.filter((e) => e.label === '0').slice(0, 2);
    const examples = [neg[0], pos[0], neg[1], pos[1]].map((e) => ({ input: e.text, output: labels[Number(e.label)] }));
    const few = (normalize) => (e) => lib.fewShot({ model, tokenizer, instruction, examples, query: fit(e.text), labels, template, normalize });
    await tally('few-shot (4 demonstrations), total log-likelihood', few('none'), true);
    await tally('few-shot (4 demonstrations), unconditional (answer context "Sentiment:")', few('unconditional'), true);
  }
  return rows;
}

function runChild(job, tmp, name) {
  const path = join(tmp, `${name}.job.json`);
  writeFileSync(path, JSON.stringify(job));
  const r = spawnSync(process.execPath, [join(benchDir, 'lib', 'finetune-child.js'), path], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`fine-tuning run ${name} failed (exit ${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

export async function main(argv) {
  const args = parseArgs(argv);
  const log = (s) => console.log(s);
  const outDir = join(benchDir, 'results');
  if (args.render) {
    const doc = JSON.parse(readFileSync(join(outDir, 'finetune.json'), 'utf8'));
    // Runs with other fine-tuning seeds (--finetune-seed N --models DIR --name finetune.seedN).
    doc.seedRuns = readdirSync(outDir)
      .filter((f) => /^finetune\.seed[a-z0-9-]+\.json$/.test(f))
      .map((f) => JSON.parse(readFileSync(join(outDir, f), 'utf8')))
      .filter((d) => d.pretraining.valLoss === doc.pretraining.valLoss) // the same pre-trained model only
      .flatMap((d) => d.runs.map((r) => ({ ...r, seed: d.env.finetuneSeed })));
    writeFileSync(join(outDir, 'finetune.md'), render(doc));
    log(`rewrote bench/results/finetune.md from finetune.json${doc.seedRuns.length ? ` and ${doc.seedRuns.length} runs with other seeds` : ''}`);
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
    finetuneSeed: args.finetuneSeed ?? args.seed,
    epochs: args.quick ? 1 : args.epochs,
    loadAverageStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
  log(`ferrogpt ${env.ferrogpt} (${env.commit ?? 'no git'})  ${env.cpu}  ${env.cores} cores  backend ${JSON.stringify(info)}  load ${env.loadAverageStart.join(' ')}`);

  const tmp = mkdtempSync(join(os.tmpdir(), 'ferrogpt-bench-finetune-'));
  try {
    // ---- the corpus, split; the tasks ----
    const corpus = readFileSync(join(root, 'data', 'corpus.txt'), 'utf8');
    const { preTrain, heldOut } = splitCorpus(corpus);
    const preTrainPath = join(tmp, 'pretrain.txt');
    writeFileSync(preTrainPath, preTrain);
    const endings = endingTasks(heldOut);
    const sub = (t) => (args.quick ? { train: t.train.slice(0, 96), validation: t.validation.slice(0, 48) } : t);
    const tasks = {};
    if (args.tasks.includes('ending-choice')) tasks['ending-choice'] = { type: 'choice', ...sub(endings.choice), chance: 0.25 };
    if (args.tasks.includes('ending-pair')) tasks['ending-pair'] = { type: 'entailment', labels: ['0', '1'], ...sub(endings.entailment), chance: 0.5 };
    let sentimentSource = null;
    const references = {};
    if (args.tasks.includes('sentiment')) {
      const data = fetchSentiment(log);
      sentimentSource = data.source;
      const train = readJsonl(data.train).map(({ text, label }) => ({ text, label }));
      const validation = readJsonl(data.valid).map(({ text, label }) => ({ text, label }));
      tasks.sentiment = { type: 'classification', labels: ['0', '1'], ...sub({ train, validation }), chance: 0.5 };
      references.sentiment = sentimentReferences(train, validation);
    }
    for (const [name, t] of Object.entries(tasks)) log(`task ${name} (${t.type}): ${t.train.length} train, ${t.validation.length} validation examples`);

    // ---- pre-training ----
    const tokenizer = await lib.Tokenizer.train([preTrainPath], { type: 'bpe', vocabSize: VOCAB });
    const prepared = await lib.prepareData(preTrainPath, { tokenizer, out: join(tmp, 'pretrain.bin') });
    const config = { ...MODEL, vocabSize: tokenizer.vocabSize, seed: args.seed };
    const dirs = args.models ? { pretrained: join(args.models, 'pretrained'), random: join(args.models, 'random') } : { pretrained: join(tmp, 'pretrained'), random: join(tmp, 'random') };
    const statsPath = args.models ? join(args.models, 'pretraining.json') : null;
    let pretraining;
    let pretrained;
    let random;
    if (statsPath !== null && existsSync(statsPath)) {
      // --models DIR from an earlier run: the same pre-trained and initial weights, not trained again.
      pretraining = { ...JSON.parse(readFileSync(statsPath, 'utf8')), reusedFrom: args.models };
      pretrained = await lib.GPT.load(dirs.pretrained);
      random = await lib.GPT.load(dirs.random);
      log(`pre-trained and random-init models from ${args.models} (${pretraining.steps} steps, validation loss ${pretraining.valLoss.toFixed(3)})`);
    } else {
      pretrained = lib.GPT.create(config);
      random = lib.GPT.create(config); // the same initial weights: (c) starts where pre-training did
      await random.save(dirs.random);
      await tokenizer.save(join(dirs.random, 'tokenizer.json'));
      const pretrainSteps = args.quick ? 20 : args.pretrainSteps;
      const t0 = performance.now();
      log(`pre-training ${pretrained.numParameters()} parameters for ${pretrainSteps} steps (batch 16 × ${MODEL.blockSize} tokens) on the first 70% of data/corpus.txt (${prepared.meta.count} tokens)`);
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
      await pretrained.save(dirs.pretrained);
      await tokenizer.save(join(dirs.pretrained, 'tokenizer.json'));
      pretraining = { steps: pre.step, tokens: pre.step * 16 * MODEL.blockSize, corpusTokens: prepared.meta.count, finalLoss: pre.finalLoss, valLoss: pre.valLoss, seconds: (performance.now() - t0) / 1000 };
      if (statsPath !== null) writeFileSync(statsPath, JSON.stringify(pretraining, null, 2) + '\n');
    }

    // ---- prompting (no updates) ----
    const prompts = {};
    for (const name of ['ending-choice', 'sentiment']) {
      if (!tasks[name] || !args.prompting) continue;
      log(`prompting ${name}: zero-shot and few-shot`);
      const pre = await prompting(lib, pretrained, tokenizer, name, tasks[name], args.quick);
      const rand = await prompting(lib, random, tokenizer, name, tasks[name], args.quick);
      prompts[name] = pre.map((r, i) => ({ ...r, random: rand[i].accuracy }));
      for (const r of pre) log(`  ${r.name}: ${pct(r.accuracy)}`);
    }
    pretrained.dispose();
    random.dispose();

    // ---- fine-tuning: every task × condition, each in a child process ----
    const runs = [];
    for (const [name, t] of Object.entries(tasks)) {
      const files = { train: join(tmp, `${name}.train.json`), validation: join(tmp, `${name}.valid.json`) };
      writeFileSync(files.train, JSON.stringify(t.train));
      writeFileSync(files.validation, JSON.stringify(t.validation));
      for (const c of CONDITIONS.filter((x) => args.conditions.includes(x.key))) {
        log(`fine-tuning ${name}: ${c.name}, ${env.epochs} epochs at the defaults`);
        const job = {
          root,
          model: dirs[c.model],
          threads: args.threads,
          task: { type: t.type, ...(t.labels ? { labels: t.labels } : {}), ...files },
          options: { epochs: env.epochs, seed: env.finetuneSeed, ...c.options },
        };
        const r = runChild(job, tmp, `${name}-${c.key}`);
        runs.push({ task: name, condition: c.key, name: c.name, ...r });
        log(`  → ${pm(r.accuracy, r.n)}% (epochs: ${r.history.map((h) => pct(h.accuracy)).join(', ')}), ${r.trainableParameters} trainable, ${r.maxRssMiB.toFixed(0)} MiB, ${r.msPerStep?.toFixed(0)} ms/update${r.warnings.length ? `; warned: ${r.warnings.join(' | ')}` : ''}`);
      }
    }

    env.loadAverageEnd = os.loadavg().map((x) => +x.toFixed(2));
    env.wallSeconds = Math.round((Date.now() - started) / 1000);
    const doc = {
      suite: 'finetune',
      env,
      model: { ...MODEL, vocabSize: tokenizer.vocabSize },
      pretraining,
      tasks: Object.fromEntries(Object.entries(tasks).map(([k, t]) => [k, { type: t.type, train: t.train.length, validation: t.validation.length, chance: t.chance }])),
      sentimentSource,
      references,
      prompts,
      runs,
    };
    mkdirSync(outDir, { recursive: true });
    const name = args.name ?? (args.quick ? 'finetune.quick' : 'finetune');
    writeFileSync(join(outDir, `${name}.json`), JSON.stringify(doc, null, 2) + '\n');
    const md = render(doc);
    writeFileSync(join(outDir, `${name}.md`), md);
    log('');
    log(md);
    log(`wrote ${relative(root, join(outDir, `${name}.json`))} and ${relative(root, join(outDir, `${name}.md`))} in ${env.wallSeconds} s`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function render(doc) {
  const { env, pretraining: p, runs, prompts, references } = doc;
  const L = [];
  L.push('# Fine-tuning on real text: pre-training vs random init, λ = 0.5 vs 0, LoRA, and prompting');
  L.push('');
  L.push(`Generated by \`npm run bench:finetune\` (bench/suites/finetune.js) on ${env.date}${env.quick ? ' — **--quick run: a few steps, numbers meaningless**' : ''}.`);
  L.push('');
  L.push('| | |');
  L.push('|---|---|');
  L.push(`| CPU | ${env.cpu}, ${env.cores} cores |`);
  L.push(`| ferrogpt | ${env.ferrogpt} (${env.commit ?? 'no git'}), ${env.backend.name} backend, simd ${env.backend.simd}, ${env.backend.threads} threads |`);
  L.push(`| Load average | ${env.loadAverageStart.join(' ')} at start, ${env.loadAverageEnd.join(' ')} at end (accuracies do not depend on it; times do) |`);
  L.push(`| Whole run | ${env.wallSeconds} s |`);
  L.push('');
  L.push('## Setup');
  L.push('');
  L.push(`Model: GPT-2-style (pre-LN) ${doc.model.nLayer} layers, ${doc.model.nHead} heads, ${doc.model.nEmbd} dims, block ${doc.model.blockSize}, dropout ${doc.model.dropout}, byte-level BPE of ${doc.model.vocabSize} tokens (+3 task tokens).`);
  L.push('');
  L.push(`Pre-training (L1) on the first 70% of data/corpus.txt (${p.corpusTokens.toLocaleString('en-US')} tokens): ${p.steps} steps × 16 × ${doc.model.blockSize} tokens, AdamW lr 1e-3 cosine to 1e-4, wd 0.1: final train loss ${p.finalLoss.toFixed(3)}, validation loss ${p.valLoss?.toFixed(3) ?? 'n/a'} nats/token, ${p.seconds.toFixed(0)} s. The last 30% is held out; the ending tasks are made from it (bench/lib/ending-tasks.js).`);
  L.push('');
  L.push('| task | format | train | validation | chance |');
  L.push('|---|---|--:|--:|--:|');
  const about = {
    'ending-choice': 'choice: `S beginning D ending_k X` for 4 endings (the true one, 3 of other held-out sentences)',
    'ending-pair': 'entailment: `S beginning D ending X`, its own ending or another sentence\'s',
    sentiment: 'classification: `S review X`, positive / negative (UCI Sentiment Labelled Sentences)',
  };
  for (const [k, t] of Object.entries(doc.tasks)) L.push(`| ${k} | ${about[k]} | ${t.train} | ${t.validation} | ${pct(t.chance)} |`);
  L.push('');
  L.push(`Fine-tuning: \`finetune()\` at its defaults (only \`epochs: ${env.epochs}\`, \`lambda\`, \`lora\` and \`preset\` given; see the README's fine-tuning section for what the defaults are), seed ${env.finetuneSeed ?? env.seed}; every run in a child process of its own. (c) starts from exactly the weights pre-training started from.`);
  L.push('');
  L.push('## Validation accuracy after the last epoch (± one standard error)');
  L.push('');
  const taskNames = Object.keys(doc.tasks);
  L.push(`| condition | ${taskNames.join(' | ')} |`);
  L.push(`|---|${taskNames.map(() => '--:').join('|')}|`);
  for (const { key } of CONDITIONS) {
    const rs = taskNames.map((t) => runs.find((r) => r.task === t && r.condition === key));
    if (rs.every((r) => r === undefined)) continue;
    L.push(`| ${rs.find(Boolean).name} | ${rs.map((r) => (r ? pm(r.accuracy, r.n) : '')).join(' | ')} |`);
  }
  const bestPrompt = (t) => (prompts[t] ?? []).reduce((a, b) => (a === null || b.accuracy > a.accuracy ? b : a), null);
  if (taskNames.some((t) => bestPrompt(t))) {
    L.push(`| best prompting of the pre-trained model (no updates; method below) | ${taskNames.map((t) => (bestPrompt(t) ? pm(bestPrompt(t).accuracy, bestPrompt(t).n) : '')).join(' | ')} |`);
  }
  for (const ref of references.sentiment ?? []) L.push(`| ${ref.name} | ${taskNames.map((t) => (t === 'sentiment' ? pct(ref.accuracy) : '')).join(' | ')} |`);
  L.push('');
  L.push('Per epoch, and what each run cost:');
  L.push('');
  L.push('| task | condition | accuracy per epoch | final train loss | trainable parameters | peak memory | time per update | warnings |');
  L.push('|---|---|---|--:|--:|--:|--:|---|');
  for (const r of runs) {
    L.push(`| ${r.task} | ${r.name} | ${r.history.map((h) => pct(h.accuracy)).join(', ')} | ${r.finalTrainLoss.toFixed(3)} | ${r.trainableParameters?.toLocaleString('en-US') ?? 'n/a'} | ${r.maxRssMiB.toFixed(0)} MiB | ${r.msPerStep?.toFixed(0) ?? 'n/a'} ms | ${r.warnings.length ? r.warnings.length : '—'} |`);
  }
  L.push('');
  for (const [t, rows] of Object.entries(prompts)) {
    L.push(`## Prompting the same models on ${t} (no gradient updates)`);
    L.push('');
    L.push('| method | pre-trained | random init |');
    L.push('|---|--:|--:|');
    for (const r of rows) {
      L.push(`| ${r.name}${r.meanDemonstrations !== undefined ? ` (${r.meanDemonstrations.toFixed(1)} fit in the block on average)` : ''} | ${pm(r.accuracy, r.n)} | ${pm(r.random, r.n)} |`);
    }
    L.push('');
  }
  const seeds = acrossSeeds(doc);
  if (seeds.length) {
    L.push('## Across fine-tuning seeds');
    L.push('');
    L.push('The same pre-trained and random-init models, fine-tuned again with other seeds (the example order, the dropout masks and the head\'s init change; the task-token rows come from the model\'s seed and stay): the spread of training, which one run\'s standard error (the validation sample only) does not show.');
    L.push('');
    L.push('| task | condition | accuracy by seed | mean |');
    L.push('|---|---|---|--:|');
    for (const r of seeds) for (const c of r.conditions) L.push(`| ${r.task} | ${c.name} | ${c.bySeed.map(([sd, acc]) => `${sd}: ${pct(acc)}`).join(', ')} | ${pct(c.mean)} |`);
    L.push('');
    for (const r of seeds) if (r.diff) L.push(`${r.task}: (a) − (c) averages ${(100 * r.diff.mean).toFixed(1)} points over ${r.diff.n} seeds (per seed ${r.diff.each.map((x) => (100 * x).toFixed(1)).join(', ')}; standard error of the mean ${(100 * r.diff.se).toFixed(1)}).`);
    L.push('');
  }
  L.push('## Reading');
  L.push('');
  L.push(reading(doc));
  L.push('');
  return L.join('\n');
}

/** Per task, (a) and (c) over every fine-tuning seed run, and their difference seed by seed. */
function acrossSeeds(doc) {
  const extra = doc.seedRuns ?? [];
  if (extra.length === 0) return [];
  const all = [...doc.runs.map((r) => ({ ...r, seed: doc.env.finetuneSeed ?? doc.env.seed })), ...extra];
  const out = [];
  for (const task of Object.keys(doc.tasks)) {
    const conditions = [];
    for (const key of ['a', 'c']) {
      const rs = all.filter((r) => r.task === task && r.condition === key);
      if (rs.length < 2) continue;
      conditions.push({ key, name: rs[0].name, bySeed: rs.map((r) => [r.seed, r.accuracy]), mean: rs.reduce((x, r) => x + r.accuracy, 0) / rs.length });
    }
    if (conditions.length === 0) continue;
    const [a, c] = ['a', 'c'].map((k) => conditions.find((x) => x.key === k));
    let diff = null;
    if (a && c) {
      const each = a.bySeed.filter(([sd]) => c.bySeed.some(([t]) => t === sd)).map(([sd, acc]) => acc - c.bySeed.find(([t]) => t === sd)[1]);
      const mean = each.reduce((x, y) => x + y, 0) / each.length;
      const sd = Math.sqrt(each.reduce((x, y) => x + (y - mean) ** 2, 0) / Math.max(1, each.length - 1));
      diff = { n: each.length, each, mean, se: sd / Math.sqrt(each.length) };
    }
    out.push({ task, conditions, diff });
  }
  return out;
}

/** What the numbers say, computed from them (so it never goes stale). */
function reading(doc) {
  const { runs, prompts } = doc;
  const s = [];
  const at = (t, k) => runs.find((r) => r.task === t && r.condition === k);
  const pts = (x) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} points`;
  for (const t of Object.keys(doc.tasks)) {
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((k) => at(t, k));
    if (!a || !c) continue;
    const diff = a.accuracy - c.accuracy;
    const both = Math.sqrt(se(a.accuracy, a.n) ** 2 + se(c.accuracy, c.n) ** 2);
    const verdict =
      diff >= 2 * both ? 'pre-training helps, by more than two standard errors'
      : diff >= 0.05 ? 'pre-training helps by 5 points or more, within two standard errors'
      : diff > -2 * both ? 'no difference beyond two standard errors'
      : 'pre-training hurt';
    let line = `**${t}**: (a) − (c) = ${pts(diff)} (standard error of the difference ${(100 * both).toFixed(1)}): ${verdict}.`;
    if (b) line += ` λ = 0.5 against λ = 0: ${pts(a.accuracy - b.accuracy)}.`;
    if (d) line += ` LoRA against full fine-tuning: ${pts(d.accuracy - a.accuracy)}, with ${((100 * d.trainableParameters) / a.trainableParameters).toFixed(1)}% of the trainable parameters.`;
    if (e) line += ` The defaults against GPT-1's recipe as published: ${pts(a.accuracy - e.accuracy)}.`;
    const seeded = acrossSeeds(doc).find((r) => r.task === t)?.diff;
    if (seeded) line += ` Over ${seeded.n} fine-tuning seeds (a) − (c) averages ${pts(seeded.mean)} (standard error of the mean ${(100 * seeded.se).toFixed(1)}).`;
    s.push(line);
  }
  for (const [t, rows] of Object.entries(prompts)) {
    const a = at(t, 'a');
    if (!a || rows.length === 0) continue;
    const best = rows.reduce((x, y) => (y.accuracy > x.accuracy ? y : x));
    const both = Math.sqrt(se(a.accuracy, a.n) ** 2 + se(best.accuracy, best.n) ** 2);
    const seeded = acrossSeeds(doc).find((r) => r.task === t)?.conditions.find((c) => c.key === 'a');
    const mean = seeded ? ` Over ${seeded.bySeed.length} fine-tuning seeds (a) averages ${pct(seeded.mean)}: ${pts(seeded.mean - best.accuracy)}.` : '';
    s.push(`On ${t} the best prompting figure of the pre-trained model is ${pct(best.accuracy)} (${best.name}); fine-tuned (a) reaches ${pct(a.accuracy)}: ${pts(a.accuracy - best.accuracy)} (standard error of the difference ${(100 * both).toFixed(1)}).${mean}`);
  }
  return s.join('\n\n');
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
