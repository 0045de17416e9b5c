// Fine-tuning (GPT-1 section 3.2): the task tokens in the model, the head and its gradients,
// L3 = L2 + λ·L1, similarity's two orders, multiple choice's softmax over the choices,
// `finetune` on a small synthetic task of each type, prediction, save and load.
//
// The gradient and equality checks run on every backend (the head is built from the Backend
// kernels only); the learning runs use the default backend (native when built).

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { initBackend } from '../src/backend/index.js';
import { GPT } from '../src/model/gpt.js';
import { FineTunedGPT, type TaskDefinition } from '../src/tasks/finetuned.js';
import { TASK_TOKENS, prepareForTask } from '../src/tasks/special.js';
import type { TaskExample, TaskType } from '../src/tasks/transform.js';
import { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { FINETUNE_PRESETS, finetune, finetuneRecipe, stillAtChance, widthScaledLr, type FineTuneStepInfo } from '../src/train/finetune.js';
import { cli } from './helpers/cli-in-process.js';
import { centralDifference, nudgeEntry } from './helpers/compare.js';
import { saveModelFolder, useScratchDir, writeJsonl } from './helpers/folders.js';
import { describeEachBackend } from './helpers/backends.js';
import { mulberry32 } from './helpers/random.js';
import { choiceTask, classificationTask, entailmentTask, similarityTask } from './helpers/synthetic-tasks.js';

await initBackend();
const tokenizer = Tokenizer.trainFromTexts(['abcdefghx'], { type: 'char' });
const TINY = { blockSize: 24, nLayer: 2, nHead: 2, nEmbd: 16, seed: 7 };

/** A tiny model with the task tokens and a fresh head, dropout off (deterministic passes). */
function tinyTask(backend: Backend, def: TaskDefinition): FineTunedGPT {
  const base = GPT.create({ vocabSize: tokenizer.vocabSize, ...TINY }, backend);
  const p = prepareForTask(base, tokenizer, { dropout: 0 });
  base.dispose();
  return FineTunedGPT.create(p.model, p.tokenizer, { clfDropout: 0, ...def }, { seed: 3 });
}

const CASES: Array<{ name: string; def: TaskDefinition; examples: TaskExample[] }> = [
  { name: 'classification', def: { type: 'classification', labels: ['neg', 'pos'] }, examples: classificationTask(4, 11) },
  { name: 'entailment', def: { type: 'entailment', labels: ['contradiction', 'entailment', 'neutral'] }, examples: entailmentTask(3, 12) },
  { name: 'similarity', def: { type: 'similarity', labels: [0, 1] }, examples: similarityTask(3, 13).map(({ score: _s, ...e }) => e) },
  { name: 'similarity regression', def: { type: 'similarity', regression: true }, examples: similarityTask(3, 14).map(({ label: _l, ...e }) => e) },
  { name: 'choice', def: { type: 'choice' }, examples: choiceTask(3, 15) },
];

function allGrads(ft: FineTunedGPT): Float32Array[] {
  return [...ft.model.namedParameters().map(([, p]) => p.grad()!), ...ft.head.namedGradients().map(([, g]) => g)];
}

function zeroGrads(ft: FineTunedGPT): void {
  ft.model.zeroGrad();
  ft.head.zeroGrad();
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>, bOff = 0): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[bOff + i];
  return s;
};

describe('task tokens in the model', () => {
  it('new wte rows are N(0, 0.02), old rows and all else copied, still tied to the output', () => {
    const base = GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 128, seed: 5 });
    const p = prepareForTask(base, tokenizer, { dropout: 0 });
    const V0 = tokenizer.vocabSize;
    const C = 128;
    expect(p.rebuilt).toBe(true);
    expect(p.added).toEqual([TASK_TOKENS.start, TASK_TOKENS.delim, TASK_TOKENS.extract]);
    expect(p.model.config.vocabSize).toBe(V0 + 3);
    expect(p.ids).toEqual({ start: V0, delim: V0 + 1, extract: V0 + 2 });
    const before = new Map(base.namedParameters().map(([n, q]) => [n, q.data()]));
    for (const [name, q] of p.model.namedParameters()) {
      const d = q.data();
      if (name !== 'transformer.wte.weight') expect(d).toEqual(before.get(name));
      else {
        expect(d.subarray(0, V0 * C)).toEqual(before.get(name));
        const fresh = d.subarray(V0 * C);
        const mean = fresh.reduce((a, b) => a + b, 0) / fresh.length;
        const std = Math.sqrt(fresh.reduce((a, b) => a + (b - mean) ** 2, 0) / fresh.length);
        expect(Math.abs(mean)).toBeLessThan(0.004); // 384 draws: standard error 0.001
        expect(std).toBeGreaterThan(0.017);
        expect(std).toBeLessThan(0.023);
      }
    }
    // Tied: the logit of a new token is the hidden state · its new wte row.
    const ids = Int32Array.from([1, p.ids.start, 2, p.ids.extract]);
    const logits = p.model.forward(ids, 1, 4);
    const hidden = p.model.forwardHidden(ids, 1, 4);
    const wte = p.model.namedParameters().find(([n]) => n === 'transformer.wte.weight')![1].data();
    const V = V0 + 3;
    expect(logits[3 * V + p.ids.extract]).toBeCloseTo(dot(hidden.subarray(3 * C, 4 * C), wte, p.ids.extract * C), 4);

    // A model (and tokenizer) that already has them keeps them: nothing rebuilt or re-drawn.
    const again = prepareForTask(p.model, p.tokenizer, { dropout: 0 });
    expect(again.rebuilt).toBe(false);
    expect(again.model).toBe(p.model);
    expect(again.ids).toEqual(p.ids);
    expect(again.added).toEqual([]);
    base.dispose();
    p.model.dispose();
  });

  it('ids inside a padded vocabulary (GPT-2: 50257 tokens, 50304 rows) get fresh rows; the rest stays', () => {
    const V0 = tokenizer.vocabSize + 8; // 8 padding rows
    const base = GPT.create({ vocabSize: V0, blockSize: 8, nLayer: 1, nHead: 1, nEmbd: 8, seed: 5 });
    const p = prepareForTask(base, tokenizer, { dropout: 0 });
    expect(p.model.config.vocabSize).toBe(V0);
    const wte0 = base.namedParameters()[0][1].data();
    const wte1 = p.model.namedParameters()[0][1].data();
    const C = 8;
    const Vt = tokenizer.vocabSize;
    expect(wte1.subarray(0, Vt * C)).toEqual(wte0.subarray(0, Vt * C));
    expect(wte1.subarray(Vt * C, (Vt + 3) * C)).not.toEqual(wte0.subarray(Vt * C, (Vt + 3) * C));
    expect(wte1.subarray((Vt + 3) * C)).toEqual(wte0.subarray((Vt + 3) * C));
    expect(() => prepareForTask(GPT.create({ vocabSize: 10, blockSize: 8, nLayer: 1, nHead: 1, nEmbd: 8 }), tokenizer)).toThrow(/do not belong together/);
    base.dispose();
    p.model.dispose();
  });
});

describeEachBackend('fine-tuning passes', (backend: Backend) => {
  it('similarity adds the final states of the two orders at [extract] before the head', () => {
    const ft = tinyTask(backend, CASES[2].def);
    const ex = { text1: 'abcx', text2: 'hg' };
    const { batch } = ft.batch(ft.encode([ex]), [0]);
    const out = ft.outputsOf(batch).values; // (1, 2)
    // By hand: each order alone through the model, its extract row, added, then W_y·h + b_y.
    const C = ft.model.config.nEmbd;
    const state = (seq: Int32Array): Float32Array => ft.model.forwardHidden(seq, 1, seq.length).slice((seq.length - 1) * C, seq.length * C);
    const enc = ft.encode([ex]).examples[0];
    expect(enc.seqs).toHaveLength(2);
    expect(enc.seqs[1][0]).toBe(ft.ids.start);
    const h = state(enc.seqs[0]).map((v, c) => v + state(enc.seqs[1])[c]);
    const [[, W], [, b]] = ft.head.namedParameters();
    for (let k = 0; k < 2; k++) expect(out[k]).toBeCloseTo(dot(h, W, k * C) + b[k], 4);
    // ... so the prediction does not depend on the order the pair is given in.
    const swapped = ft.predict({ text1: ex.text2, text2: ex.text1 }).probabilities!;
    ft.predict(ex).probabilities!.forEach((q, k) => expect(q).toBeCloseTo(swapped[k], 5));
    // The training pass pools the same way (dropout off): its L2 is the cross-entropy of these logits.
    const gold = { labels: Int32Array.of(1), scores: Float32Array.of(NaN) };
    const { l2 } = ft.lossBackward(batch, gold, 0);
    const lse = Math.log(Math.exp(out[0]) + Math.exp(out[1]));
    expect(l2).toBeCloseTo(lse - out[1], 4);
    ft.dispose();
  });

  it('multiple choice: one score per choice, softmax across the choices', () => {
    const ft = tinyTask(backend, { type: 'choice' });
    const ex = { context: 'abc', choices: ['dx', 'eef', 'g'], label: 2 };
    const pred = ft.predict(ex);
    expect(pred.probabilities).toHaveLength(3);
    expect(pred.probabilities!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    // Each choice scored alone (its own sequence, its own extract row) gives the same softmax.
    const C = ft.model.config.nEmbd;
    const [[, W], [, b]] = ft.head.namedParameters();
    const scores = ft.encode([ex]).examples[0].seqs.map((seq) => dot(ft.model.forwardHidden(seq, 1, seq.length).subarray((seq.length - 1) * C), W) + b[0]);
    const z = scores.map(Math.exp);
    const sum = z.reduce((a, c) => a + c, 0);
    pred.probabilities!.forEach((q, k) => expect(q).toBeCloseTo(z[k] / sum, 5));
    expect(pred.index).toBe(pred.probabilities!.indexOf(Math.max(...pred.probabilities!)));
    expect(pred.label).toBe(pred.index);
    // L2 is -log of the right choice's probability.
    const { batch, gold } = ft.batch(ft.encode([ex]), [0]);
    expect(ft.lossBackward(batch, gold, 0).l2).toBeCloseTo(-Math.log(z[2] / sum), 4);
    ft.dispose();
  });

  it.each(CASES.map((c) => [c.name, c] as const))('∇L3 = ∇L2 + λ·∇L1 (%s)', (_name, c) => {
    const ft = tinyTask(backend, c.def);
    const data = ft.encode(c.examples);
    const { batch, gold } = ft.batch(data, c.examples.map((_, i) => i));
    const lambda = 0.5;
    zeroGrads(ft);
    const p2 = ft.lossBackward(batch, gold, 0);
    const g2 = allGrads(ft);
    expect(Number.isNaN(p2.l1)).toBe(true);
    // L1 alone on the same inputs, through the model's own hooks.
    zeroGrads(ft);
    const pass = ft.model.trainForward(batch.ids, batch.S, batch.T);
    const l1 = ft.model.lmLoss(pass, batch.targets, 1);
    ft.model.backward(pass);
    const g1 = allGrads(ft);
    zeroGrads(ft);
    const p3 = ft.lossBackward(batch, gold, lambda);
    const g3 = allGrads(ft);
    expect(p3.l2).toBeCloseTo(p2.l2, 5);
    expect(p3.l1).toBeCloseTo(l1, 5);
    expect(p3.loss).toBeCloseTo(p2.l2 + lambda * l1, 5);
    let maxDiff = 0;
    let maxAbs = 0;
    let l1Norm = 0;
    g3.forEach((g, i) => {
      for (let j = 0; j < g.length; j++) {
        maxDiff = Math.max(maxDiff, Math.abs(g[j] - (g2[i][j] + lambda * g1[i][j])));
        maxAbs = Math.max(maxAbs, Math.abs(g[j]));
        l1Norm = Math.max(l1Norm, Math.abs(g1[i][j]));
      }
    });
    expect(l1Norm).toBeGreaterThan(1e-3); // L1 really contributes
    expect(maxDiff).toBeLessThan(1e-6 * Math.max(1, maxAbs));
    ft.dispose();
  });

  it.each(CASES.map((c) => [c.name, c] as const))('head gradient vs central finite differences (%s)', (_name, c) => {
    const ft = tinyTask(backend, c.def);
    const data = ft.encode(c.examples);
    const { batch, gold } = ft.batch(data, c.examples.map((_, i) => i));
    zeroGrads(ft);
    ft.lossBackward(batch, gold, 0);
    const [[, dW], [, db]] = ft.head.namedGradients();
    const wteGrad = ft.model.namedParameters()[0][1].grad()!;
    const [[, W0], [, b0]] = ft.head.namedParameters();
    const params = ft.model.namedParameters().map(([n, p]) => [n, p.data()] as [string, Float32Array]);
    const loss = (): number => ft.lossBackward(batch, gold, 0).l2;
    const C = ft.model.config.nEmbd;

    const rng = mulberry32(99);
    const checks: Array<{ what: string; analytic: number; numeric: number }> = [];
    const central = (set: (delta: number) => void, h: number): number => centralDifference(loss, set, h);
    // W_y and b_y (h = 1e-2: the loss is smooth in them, and f32 noise / 2h stays ~1e-5)
    for (let n = 0; n < 6; n++) {
      const i = Math.floor(rng() * W0.length);
      const numeric = central(nudgeEntry(W0, i, (W) => ft.head.loadParameters(W, b0)), 1e-2);
      checks.push({ what: `W[${i}]`, analytic: dW[i], numeric });
    }
    for (let k = 0; k < b0.length; k++) {
      const numeric = central(nudgeEntry(b0, k, (b) => ft.head.loadParameters(W0, b)), 1e-2);
      checks.push({ what: `b[${k}]`, analytic: db[k], numeric });
    }
    // The gradient reaches the transformer: the extract token's embedding row, which every
    // sequence reads at the position the head pools.
    const wte = params[0][1];
    for (let n = 0; n < 3; n++) {
      const i = ft.ids.extract * C + Math.floor(rng() * C);
      const numeric = central(nudgeEntry(wte, i, (w) => ft.model.loadParameters(params.map(([name, v]) => [name, name === params[0][0] ? w : v] as const))), 1e-2);
      checks.push({ what: `wte[${i}]`, analytic: wteGrad[i], numeric });
    }
    for (const { what, analytic, numeric } of checks) {
      const err = Math.abs(analytic - numeric);
      expect(err, `${what}: analytic ${analytic} vs numeric ${numeric}`).toBeLessThan(2e-3 + 2e-2 * Math.abs(numeric));
    }
    expect(checks.some((x) => Math.abs(x.analytic) > 1e-2)).toBe(true);
    ft.dispose();
  });
}, ['native', 'wasm', 'reference']);

describe('finetune: a small synthetic task of each type, learned from scratch', () => {
  // Tiny models with no pre-training, so a larger lr than GPT-1's 6.25e-5 (which is for a
  // pre-trained 117M model) and no dropout; 600 train / 200 validation examples, batch 16.
  const base = { vocabSize: tokenizer.vocabSize, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32, seed: 1 };
  const run = async (type: TaskType, train: TaskExample[], validation: TaskExample[], epochs: number, lambda: number) => {
    const model = GPT.create(base);
    const r = await finetune({ model, tokenizer, task: { type, train, validation }, epochs, batchSize: 16, lr: 3e-3, dropout: 0, clfDropout: 0, lambda, warmup: 0.05 });
    model.dispose();
    return r;
  };

  it('classification (has an "x"): validation accuracy >= 0.95 within 228 updates, λ = 0.5', async () => {
    const r = await run('classification', classificationTask(600, 1), classificationTask(200, 2), 6, 0.5);
    expect(r.steps).toBe(6 * 38);
    expect(r.validation!.accuracy).toBeGreaterThanOrEqual(0.95);
    expect(r.validation!.f1).toBeGreaterThanOrEqual(0.95);
    r.model.dispose();
  });

  it('entailment (which side of the delimiter has an "x"): accuracy >= 0.95 within 228 updates, λ = 0', async () => {
    // λ = 0: from random init, the LM loss on random letters competes with the task for the
    // tiny model's capacity and slows it down (it helps a pre-trained model; see bench/).
    const r = await run('entailment', entailmentTask(600, 3), entailmentTask(200, 4), 6, 0);
    expect(r.validation!.accuracy).toBeGreaterThanOrEqual(0.95);
    r.model.dispose();
  });

  it('similarity (both texts have an "x"): accuracy >= 0.95 within 304 updates, λ = 0.5', async () => {
    const strip = (xs: ReturnType<typeof similarityTask>) => xs.map(({ score: _s, ...e }) => e);
    const r = await run('similarity', strip(similarityTask(600, 5)), strip(similarityTask(200, 6)), 8, 0.5);
    expect(r.validation!.accuracy).toBeGreaterThanOrEqual(0.95);
    r.model.dispose();
  });

  it('similarity regression (how many texts have an "x"): Pearson >= 0.95 within 228 updates, λ = 0.5', async () => {
    const strip = (xs: ReturnType<typeof similarityTask>) => xs.map(({ label: _l, ...e }) => e);
    const r = await run('similarity', strip(similarityTask(600, 7)), strip(similarityTask(200, 8)), 6, 0.5);
    expect(r.model.task.regression).toBe(true);
    expect(r.validation!.pearson).toBeGreaterThanOrEqual(0.95);
    expect(r.validation!.spearman).toBeGreaterThan(0.8);
    r.model.dispose();
  });

  it('multiple choice (the answer with an "x"): accuracy >= 0.95 within 114 updates, λ = 0.5', async () => {
    const r = await run('choice', choiceTask(600, 9), choiceTask(200, 10), 3, 0.5);
    expect(r.validation!.accuracy).toBeGreaterThanOrEqual(0.95);
    r.model.dispose();
  });
});

describe('finetune: options, data files, prediction, save and load', () => {
  const dir = useScratchDir('ferrogpt-finetune-');

  it('reads JSONL files, counts truncated examples, follows the schedule, checkpoints, and round-trips', async () => {
    const train = classificationTask(40, 21);
    const valid = classificationTask(10, 22);
    const trainPath = join(dir(), 'train.jsonl');
    const validPath = join(dir(), 'valid.csv');
    await writeJsonl(trainPath, train);
    await writeFile(validPath, 'text,label\n' + valid.map((e) => `${e.text},${e.label}`).join('\n') + '\n');
    const model = GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: 32, nLayer: 1, nHead: 2, nEmbd: 16 });
    const steps: FineTuneStepInfo[] = [];
    const maxLength = 7; // S + 5 letters + X: texts of 6..10 letters are cut
    const r = await finetune({
      model, tokenizer, task: { type: 'classification', train: trainPath, validation: validPath, maxLength },
      epochs: 2, batchSize: 8, lr: 1e-3, warmup: 2, checkpointDir: join(dir(), 'ckpt'), onStep: (s) => void steps.push(s),
    });
    expect(r.truncated.train).toBe(train.filter((e) => e.text.length > 5).length);
    expect(r.truncated.validation).toBe(valid.filter((e) => e.text.length > 5).length);
    expect(r.truncated.train).toBeGreaterThan(0);
    expect(r.addedTokens).toHaveLength(3);
    expect(r.model.model).not.toBe(model); // rebuilt (new rows, dropout 0.1); the original is untouched
    expect(model.config.vocabSize).toBe(tokenizer.vocabSize);
    expect(r.model.model.config.dropout).toBe(0.1); // GPT-1's default
    expect(r.model.task).toMatchObject({ type: 'classification', labels: ['neg', 'pos'], maxLength, clfDropout: 0.1, regression: false });
    // 40 / 8 = 5 updates an epoch; warmup 2 updates, then linear decay to 0
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(steps.map((s) => s.epoch)).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    expect(steps[0].lr).toBeCloseTo(5e-4, 12);
    expect(steps[1].lr).toBeCloseTo(1e-3, 12);
    expect(steps[9].lr).toBeCloseTo(1e-3 / 8, 12);
    expect(steps[4].validation?.count).toBe(10);
    expect(steps[3].validation).toBeUndefined();
    expect(r.history.map((h) => h.step)).toEqual([5, 10]);
    expect(steps.every((s) => Number.isFinite(s.l1) && Math.abs(s.loss - (s.l2 + 0.5 * s.l1)) < 1e-9)).toBe(true);

    // Prediction: label + probabilities; batch = one by one.
    const batch = r.model.predictBatch(valid, { batchSize: 3 });
    expect(batch).toHaveLength(10);
    for (const [i, p] of batch.entries()) {
      expect(['neg', 'pos']).toContain(p.label);
      expect(p.probabilities!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
      const one = r.model.predict(valid[i]);
      expect(one.label).toBe(p.label);
      one.probabilities!.forEach((q, k) => expect(q).toBeCloseTo(p.probabilities![k], 5));
    }
    const metrics = r.model.evaluate(valid);
    expect(metrics.accuracy).toBeCloseTo(r.validation!.accuracy!, 12);

    // Save / load keeps the head and the task; GPT.load reads the same folder (without the head).
    const out = join(dir(), 'model');
    await r.model.save(out);
    const task = JSON.parse(await readFile(join(out, 'task.json'), 'utf8'));
    expect(task).toMatchObject({ format: 'ferrogpt-task', type: 'classification', labels: ['neg', 'pos'], maxLength });
    const loaded = await FineTunedGPT.load(out);
    const again = loaded.predictBatch(valid);
    again.forEach((p, i) => {
      expect(p.label).toBe(batch[i].label);
      p.probabilities!.forEach((q, k) => expect(q).toBeCloseTo(batch[i].probabilities![k], 6));
    });
    const gpt = await GPT.load(out);
    expect(gpt.config.vocabSize).toBe(tokenizer.vocabSize + 3);
    gpt.dispose();
    // the checkpoint holds the final model
    const ck = await FineTunedGPT.load(join(dir(), 'ckpt'));
    expect(ck.predict(valid[0]).probabilities).toEqual(loaded.predict(valid[0]).probabilities);
    // A second fine-tuning of a fine-tuned model keeps its tokens (no new rows).
    const r2 = await finetune({ model: loaded.model, tokenizer: loaded.tokenizer, task: { type: 'classification', train, labels: ['neg', 'pos'] }, epochs: 1, batchSize: 40 });
    expect(r2.addedTokens).toEqual([]);
    expect(r2.model.model).toBe(loaded.model);
    r2.model.head.dispose();
    ck.dispose();
    loaded.dispose();
    r.model.dispose();
    model.dispose();
    await expect(FineTunedGPT.load(join(dir(), 'nope'))).rejects.toThrow(/task\.json/);
  });

  it('rejects bad options and unknown labels with the example that has them', async () => {
    const model = GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: 16, nLayer: 1, nHead: 1, nEmbd: 8 });
    const train = classificationTask(8, 31);
    const base = { model, tokenizer, task: { type: 'classification' as const, train } };
    await expect(finetune({ ...base, lambda: -1 })).rejects.toThrow(/lambda must be a number/);
    await expect(finetune({ ...base, batchSize: 0 })).rejects.toThrow(/batchSize must be an integer >= 1/);
    await expect(finetune({ ...base, task: { ...base.task, validation: [{ text: 'ab', label: 'maybe' }] } })).rejects.toThrow(
      'task.validation[0]: label "maybe" is not one of the task\'s labels (neg, pos)',
    );
    await expect(finetune({ ...base, task: { type: 'classification', train: [{ text: 'a', label: 'x' }] } })).rejects.toThrow(/at least 2/);
    await expect(finetune({ ...base, task: { type: 'classification', train: [{ txt: 'a' } as never] } })).rejects.toThrow('task.train[0]: field "text" is missing');
    await expect(finetune({ ...base, task: { ...base.task, maxLength: 99 } })).rejects.toThrow(/maxLength must be an integer in 3\.\.16/);
    await expect(finetune({ ...base, task: { type: 'summarize' as never, train } })).rejects.toThrow(/task type must be one of/);
    model.dispose();
  });
});

describe('finetune: defaults, presets and the at-chance warning', () => {
  it("the default lr is GPT-1's 6.25e-5 at GPT-1's width (768), scaled as 1 / nEmbd, at batch 8; preset 'gpt1' is GPT-1's recipe exactly", () => {
    expect(widthScaledLr(768)).toBeCloseTo(6.25e-5, 12);
    expect(finetuneRecipe(128).lr).toBeCloseTo(3.75e-4, 12);
    expect(finetuneRecipe(128, 'gpt1')).toEqual({ epochs: 3, batchSize: 32, lr: 6.25e-5, warmup: 0.002, schedule: 'linear', lambda: 0.5, dropout: 0.1, clfDropout: 0.1, weightDecay: 0.01, gradClip: 1 });
    const { lr: _a, ...d } = finetuneRecipe(128);
    const { lr: _b, ...g } = FINETUNE_PRESETS.gpt1;
    expect(d).toEqual({ ...g, batchSize: 8 }); // the presets differ in the lr and the batch only
    expect(() => finetuneRecipe(128, 'bert' as never)).toThrow(/preset must be 'default' or 'gpt1', got "bert"/);
  });

  it('a run reports the settings it used: the preset\'s, with the options given on top', async () => {
    const model = GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: 16, nLayer: 1, nHead: 1, nEmbd: 8, seed: 2 });
    const task = { type: 'classification' as const, train: classificationTask(8, 41) };
    const quiet = { onWarning: () => {} };
    const d = await finetune({ model, tokenizer, task, maxSteps: 1, ...quiet });
    expect(d.settings.lr).toBeCloseTo((6.25e-5 * 768) / 8, 12);
    const g = await finetune({ model, tokenizer, task, maxSteps: 1, preset: 'gpt1', batchSize: 4, ...quiet });
    expect(g.settings).toMatchObject({ lr: 6.25e-5, batchSize: 4, epochs: 3, lambda: 0.5 });
    await expect(finetune({ model, tokenizer, task, preset: 'large' as never })).rejects.toThrow(/preset must be/);
    for (const r of [d, g]) r.model.dispose();
    model.dispose();
  });

  it('an epoch whose mean L2 is within 2% of ln K warns, once per such epoch, with what to try', async () => {
    // lr 0: the weights never move, so L2 stays where a head of N(0, 0.02) starts: ~ln 2 over
    // balanced labels (the logits' first-order terms cancel), one update per epoch.
    const model = GPT.create({ vocabSize: tokenizer.vocabSize, blockSize: 16, nLayer: 1, nHead: 1, nEmbd: 8, seed: 2 });
    const train = Array.from({ length: 16 }, (_, i) => ({ text: 'abcab'.slice(0, 1 + (i % 5)), label: i % 2 ? 'pos' : 'neg' }));
    const heard: string[] = [];
    const r = await finetune({ model, tokenizer, task: { type: 'classification', train }, epochs: 2, batchSize: 16, lr: 0, dropout: 0, clfDropout: 0, onWarning: (m) => heard.push(m) });
    expect(heard).toHaveLength(2);
    expect(r.warnings).toEqual(heard);
    expect(heard[0]).toMatch(/^finetune: after epoch 1 the task loss L2 averages 0\.69\d+, within 2% of ln 2 = 0\.6931 .*Try a higher lr \(now 0\), /);
    expect(heard[1]).toMatch(/after epoch 2 /);
    r.model.dispose();
    model.dispose();
  });

  it('stillAtChance: silent outside 2% of ln K, on either side', () => {
    const o = { lr: 1e-4, batchSize: 32, epochs: 3, lambda: 0.5 };
    expect(stillAtChance(Math.log(4) * 0.985, 4, 1, o)).toMatch(/ln 4 = 1\.3863/);
    expect(stillAtChance(Math.log(4) * 1.015, 4, 1, o)).not.toBeNull();
    expect(stillAtChance(Math.log(4) * 0.97, 4, 1, o)).toBeNull();
    expect(stillAtChance(Math.log(2) * 1.03, 2, 1, o)).toBeNull();
    expect(stillAtChance(NaN, 2, 1, o)).toBeNull();
    // A hard task near ln K whose validation accuracy is above chance: both are said.
    expect(stillAtChance(Math.log(2) * 1.01, 2, 1, o, 0.595)).toMatch(/learned little or nothing of the task so far \(validation accuracy 59\.5%; guessing gets 50\.0%\)/);
  });
});

describe('ferrogpt finetune / eval / predict', () => {
  const dir = useScratchDir('ferrogpt-finetune-cli-');

  it('fine-tunes a model folder, then evaluates and predicts with the result', async () => {
    const base = await saveModelFolder(join(dir(), 'base'), { vocabSize: tokenizer.vocabSize, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32, seed: 1 }, tokenizer);
    await writeJsonl(join(dir(), 'train.jsonl'), classificationTask(600, 41));
    await writeJsonl(join(dir(), 'valid.jsonl'), classificationTask(100, 42));
    const out = join(dir(), 'out');
    const ft = await cli([
      'finetune', '--model', base, '--task', 'classification', '--train', join(dir(), 'train.jsonl'), '--valid', join(dir(), 'valid.jsonl'),
      '--out', out, '--epochs', '6', '--batch', '16', '--lr', '3e-3', '--warmup', '0.05', '--dropout', '0', '--clf-dropout', '0',
    ]);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stderr).toMatch(/step +228\/228/);
    expect(ft.stderr).toMatch(/added <\|start\|> <\|delim\|> <\|extract\|>/);
    expect(ft.stdout).toMatch(/epoch 6 \(step 228\)/); // the metrics summary
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.validationMetrics.accuracy).toBeGreaterThanOrEqual(0.9);

    const ev = await cli(['eval', '--model', out, '--data', join(dir(), 'valid.jsonl'), '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout).accuracy).toBeCloseTo(metrics.validationMetrics.accuracy, 12);

    const pr = await cli(['predict', '--model', out, '--text', 'abxcd']);
    expect(pr.code, pr.stderr).toBe(0);
    const p = JSON.parse(pr.stdout);
    expect(p.label).toBe('pos');
    expect(p.probabilities.neg + p.probabilities.pos).toBeCloseTo(1, 6);
    const many = await cli(['predict', '--model', out, '--data', join(dir(), 'valid.jsonl')]);
    expect(many.stdout.trim().split('\n')).toHaveLength(100);

    expect((await cli(['finetune', '--model', base, '--train', 'x.jsonl'])).code).toBe(2); // no --task
    expect((await cli(['predict', '--model', out])).stderr).toMatch(/exactly one of --data, --example or --text/);
    const bad = await cli(['eval', '--model', out, '--data', join(dir(), 'train.jsonl').replace('train', 'nope')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cannot read .*nope\.jsonl/);
  });

  it('Ctrl-C saves a checkpoint; --resume continues it with run.json\'s settings, to the bytes of an uninterrupted run', async () => {
    const base = await saveModelFolder(join(dir(), 'base-resume'), { vocabSize: tokenizer.vocabSize, blockSize: 24, nLayer: 1, nHead: 2, nEmbd: 16, seed: 2 }, tokenizer);
    await writeJsonl(join(dir(), 'train-r.jsonl'), classificationTask(48, 61));
    await writeJsonl(join(dir(), 'valid-r.jsonl'), classificationTask(16, 62));
    // 48 / 8 = 6 updates an epoch, 2 epochs; default dropout 0.1 and clf-dropout 0.1.
    const flags = (out: string) => ['finetune', '--model', base, '--task', 'classification', '--train', join(dir(), 'train-r.jsonl'), '--valid', join(dir(), 'valid-r.jsonl'), '--out', out, '--epochs', '2', '--batch', '8', '--lr', '3e-3', '--warmup', '2'];
    const whole = join(dir(), 'whole');
    expect((await cli(flags(whole))).code).toBe(0);

    // Ctrl-C (the command's own SIGINT listener) once step 4 is logged: mid-epoch 1.
    const split = join(dir(), 'split');
    const before = process.listeners('SIGINT');
    let sent = false;
    const first = await cli(flags(split), (text) => {
      if (!sent && /step +4\/12/.test(text)) {
        sent = true;
        for (const l of process.listeners('SIGINT').filter((x) => !before.includes(x))) (l as (s: string) => void)('SIGINT');
      }
    });
    expect(first.code, first.stderr).toBe(130);
    expect(first.stderr).toMatch(/resume: ferrogpt finetune --out .*split --resume/);
    expect(JSON.parse(await readFile(join(split, 'checkpoint', 'trainer.json'), 'utf8')).step).toBe(4);

    const resumed = await cli(['finetune', '--out', split, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming .* from .*checkpoint/);
    expect(resumed.stderr).toMatch(/step +5\/12/);
    expect(resumed.stderr).not.toMatch(/step +4\/12/);
    for (const f of ['model.safetensors', 'config.json', 'task.json', 'tokenizer.json']) {
      expect(Buffer.compare(await readFile(join(split, f)), await readFile(join(whole, f))), f).toBe(0);
    }
    const [a, b] = await Promise.all([split, whole].map(async (d) => JSON.parse(await readFile(join(d, 'metrics.json'), 'utf8'))));
    expect(a).toMatchObject({ steps: 12, startStep: 4, stopped: false });
    expect(a.history).toEqual(b.history); // epoch 1's validation came from the checkpoint
    expect(a.finalLoss).toBe(b.finalLoss);

    const none = await cli(['finetune', '--out', join(dir(), 'no-run'), '--resume']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--resume: .* holds no fine-tuning run to resume/);
  });
});

describe('TaskHead: a training pass is a value', () => {
  it('backward takes the pass from forward; a stale, reused or foreign pass is refused', async () => {
    const { ReferenceBackend } = await import('../src/backend/reference.js');
    const { TaskHead } = await import('../src/model/head.js');
    const be = new ReferenceBackend();
    const C = 4;
    const head = new TaskHead(be, C, 3, 1);
    const other = new TaskHead(be, C, 3, 2);
    const hidden = be.alloc(6 * C);
    be.write(hidden, Float32Array.from({ length: 6 * C }, (_, i) => Math.sin(i)));
    const dhidden = be.alloc(6 * C);
    const pool = { F: 2, rowA: Int32Array.from([1, 5]), rowB: null };
    const stale = head.forward(hidden, pool);
    const pass = head.forward(hidden, pool);
    expect(() => head.backward(stale, dhidden)).toThrow(/^TaskHead.backward: this pass is stale/);
    expect(() => other.backward(pass, dhidden)).toThrow(/^TaskHead.backward: pass is not a training pass of this head/);
    be.write(pass.dlogits, Float32Array.from([1, 0, 0, 0, 0, 1]));
    head.backward(pass, dhidden);
    // Only the pooled rows (1 and 5) get a gradient, through the scatter.
    const dh = be.read(dhidden) as Float32Array;
    for (let row = 0; row < 6; row++) {
      const nonzero = dh.subarray(row * C, (row + 1) * C).some((x) => x !== 0);
      expect(nonzero).toBe(row === 1 || row === 5);
    }
    expect(() => head.backward(pass, dhidden)).toThrow(/already been backpropagated/);
    expect(() => head.forward(hidden, { F: 1, rowA: Int32Array.from([6]), rowB: null })).toThrow(/^TaskHead.forward: pool.rowA\[0\] = 6 is out of range \(must be in 0..5\)/);
  });
});
