// LoRA (src/model/lora.ts, src/io/peft.ts): the adapter's init and layout, merged vs
// unmerged passes (full, KV-cached, generation), its gradients against finite differences,
// the frozen base, finetune({ lora }) (optimizer state, untouched base, checkpoint and
// resume), the PEFT adapter folder (names, shapes, round trip, merge), bad inputs, LoRA vs
// full fine-tuning on the synthetic tasks, and `ferrogpt finetune --lora`.
//
// The numeric checks run on every backend (the branches are made of Backend kernels only);
// the learning runs use the default backend (native when built).

import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { getBackend, initBackend } from '../src/backend/index.js';
import { readSafetensorsFile } from '../src/io/safetensors.js';
import { GPT } from '../src/model/gpt.js';
import { LORA_DEFAULTS, LORA_SITES, LoraAdapter, siteFeatures, type LoraOptions } from '../src/model/lora.js';
import { generate } from '../src/prompt/generate.js';
import { FineTunedGPT } from '../src/tasks/finetuned.js';
import { prepareForTask } from '../src/tasks/special.js';
import type { TaskExample, TaskType } from '../src/tasks/transform.js';
import { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { LORA_LR_RATIO, finetune, type FineTuneOptions } from '../src/train/finetune.js';
import { cli } from './helpers/cli-in-process.js';
import { centralDifference, nudgeEntry } from './helpers/compare.js';
import { saveModelFolder, useScratchDir, writeJsonl } from './helpers/folders.js';
import { describeEachBackend } from './helpers/backends.js';
import { mulberry32 } from './helpers/random.js';
import { choiceTask, classificationTask, entailmentTask, similarityTask } from './helpers/synthetic-tasks.js';

await initBackend();
const tokenizer = Tokenizer.trainFromTexts(['abcdefghx'], { type: 'char' });
const TINY = { vocabSize: tokenizer.vocabSize, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 8, seed: 7 };

/** Every A and B set to seeded values (a new adapter's B is 0, which hides half of the maths). */
function randomize(adapter: LoraAdapter, seed: number, scale = 0.5): void {
  const rng = mulberry32(seed);
  adapter.loadParameters(adapter.namedParameters().map(([name, d]) => [name, d.map(() => scale * (2 * rng() - 1))] as const));
}

/** max |a - b| / max |b|: the normwise relative difference. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / Math.max(m, 1e-30);
}

describeEachBackend('LoRA on a GPT', (backend: Backend) => {
  it("a new adapter: PEFT's shapes, A ~ U(-1/√C_in, 1/√C_in) from its seed, B = 0, the model's outputs unchanged", () => {
    const model = GPT.create({ ...TINY, nEmbd: 32 }, backend);
    const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 5) % TINY.vocabSize);
    const before = model.forward(ids, 2, 6);
    const adapter = LoraAdapter.create(model.config, { targets: 'all-linear' }, 11, backend);
    const shapes = Object.fromEntries(adapter.namedParameters().map(([n, , s]) => [n, s]));
    expect(shapes['transformer.h.0.attn.c_attn.lora_A.weight']).toEqual([8, 32]); // (r, in_features)
    expect(shapes['transformer.h.0.attn.c_attn.lora_B.weight']).toEqual([96, 8]); // (out_features, r)
    expect(shapes['transformer.h.1.mlp.c_proj.lora_A.weight']).toEqual([8, 128]);
    expect(shapes['transformer.h.1.mlp.c_proj.lora_B.weight']).toEqual([32, 8]);
    expect(adapter.numParameters()).toBe(2 * LORA_SITES.reduce((n, s) => n + 8 * (siteFeatures(s, 32).inF + siteFeatures(s, 32).outF), 0));
    for (const [name, data] of adapter.namedParameters()) {
      if (name.includes('lora_B')) expect(data.every((x) => x === 0), name).toBe(true);
      else {
        const bound = 1 / Math.sqrt(name.includes('mlp.c_proj') ? 128 : 32);
        expect(data.every((x) => Math.abs(x) < bound), name).toBe(true);
        const mean = data.reduce((a, b) => a + b, 0) / data.length;
        const rms = Math.sqrt(data.reduce((a, b) => a + b * b, 0) / data.length);
        expect(Math.abs(mean)).toBeLessThan(0.15 * bound); // U(-b, b): mean 0, rms b/√3
        expect(Math.abs(rms / (bound / Math.sqrt(3)) - 1)).toBeLessThan(0.1);
      }
    }
    // The same seed gives the same adapter; another seed another one.
    const again = LoraAdapter.create(model.config, { targets: 'all-linear' }, 11, backend);
    expect(again.namedParameters()[0][1]).toEqual(adapter.namedParameters()[0][1]);
    const other = LoraAdapter.create(model.config, { targets: 'all-linear' }, 12, backend);
    expect(other.namedParameters()[0][1]).not.toEqual(adapter.namedParameters()[0][1]);
    model.attachAdapter(adapter);
    expect(model.forward(ids, 2, 6)).toEqual(before);
    again.dispose();
    other.dispose();
    model.dispose();
  });

  it.each([
    ['pre-LN, c_attn', { postLN: false, bias: true }, {}],
    ['pre-LN, every linear layer, bias-free', { postLN: false, bias: false }, { targets: 'all-linear', rank: 3, alpha: 5 }],
    ['post-LN, c_proj and c_fc', { postLN: true, bias: true }, { targets: ['c_proj', 'c_fc'], rank: 2 }],
    ['one layer only (h.1.mlp.c_fc)', { postLN: false, bias: true }, { targets: ['h.1.mlp.c_fc'] }],
  ] as Array<[string, object, LoraOptions]>)('merged and unmerged logits agree within 1e-5; KV-cached decoding and generation run the adapter (%s)', async (_name, cfg, lora) => {
    const model = GPT.create({ ...TINY, ...cfg }, backend);
    const plain = model.forward(Int32Array.from({ length: 16 }, (_, i) => i % TINY.vocabSize), 2, 8);
    const adapter = LoraAdapter.create(model.config, lora, 3, backend);
    randomize(adapter, 5);
    model.attachAdapter(adapter);
    const ids = Int32Array.from({ length: 16 }, (_, i) => i % TINY.vocabSize);
    const unmerged = model.forward(ids, 2, 8);
    expect(relDiff(unmerged, plain)).toBeGreaterThan(1e-2); // the adapter does something
    // KV-cached: the prompt, then token by token, equals the full pass.
    const cache = model.createCache(2, 8);
    const first = model.forwardCached([Array.from(ids.subarray(0, 5)), Array.from(ids.subarray(8, 13))], cache, { logits: 'all' });
    const V = TINY.vocabSize;
    for (const b of [0, 1]) expect(relDiff(first.subarray(b * 5 * V, (b + 1) * 5 * V), unmerged.subarray(b * 8 * V, (b * 8 + 5) * V))).toBeLessThan(1e-5);
    for (let t = 5; t < 8; t++) {
      const step = model.forwardCached([[ids[t]], [ids[8 + t]]], cache);
      for (const b of [0, 1]) expect(relDiff(step.subarray(b * V, (b + 1) * V), unmerged.subarray((b * 8 + t) * V, (b * 8 + t + 1) * V))).toBeLessThan(1e-5);
    }
    cache.dispose();
    const greedy = async (m: GPT): Promise<number[]> => (await generate(m, tokenizer, 'abc', { maxNewTokens: 8, temperature: 0, stopAtEos: false }).result).tokens;
    const withAdapter = await greedy(model);
    // Merged: the same logits to float32 rounding (the weights folded on the host in float64).
    model.mergeAdapter();
    expect(model.adapter).toBeNull();
    expect(adapter.isDisposed).toBe(true);
    const merged = model.forward(ids, 2, 8);
    expect(relDiff(merged, unmerged)).toBeLessThan(1e-5);
    expect(await greedy(model)).toEqual(withAdapter);
    model.dispose();
  });

  it.each([false, true])('gradients of A, B and the head vs central finite differences (L3, model, adapter and classifier dropout; postLN %s)', (postLN) => {
    const base = GPT.create({ ...TINY, postLN, dropout: 0.1 }, backend);
    const p = prepareForTask(base, tokenizer);
    base.dispose();
    const adapter = LoraAdapter.create(p.model.config, { targets: 'all-linear', rank: 2, alpha: 3, dropout: 0.2 }, 1, backend);
    randomize(adapter, 9, 0.3);
    p.model.attachAdapter(adapter);
    const ft = FineTunedGPT.create(p.model, p.tokenizer, { type: 'classification', labels: ['neg', 'pos'], clfDropout: 0.1 }, { seed: 3 });
    const { batch, gold } = ft.batch(ft.encode(classificationTask(3, 41)), [0, 1, 2]);
    // The dropout masks are keyed by the training steps: the same for every evaluation.
    const loss = (): number => {
      ft.model.trainingSteps = 5;
      ft.headSteps = 5;
      return ft.lossBackward(batch, gold, 0.5).loss;
    };
    adapter.zeroGrad();
    ft.head.zeroGrad();
    loss();
    const grads = new Map(adapter.namedGradients());
    const [[, dW], [, db]] = ft.head.namedGradients();
    const params = adapter.namedParameters();
    const [[, W0], [, b0]] = ft.head.namedParameters();
    const central = (set: (delta: number) => void, h: number): number => centralDifference(loss, set, h);
    const rng = mulberry32(77);
    const checks: Array<{ what: string; analytic: number; numeric: number }> = [];
    for (const [name, data] of params) {
      // two entries of every A and B of every adapted layer
      for (let n = 0; n < 2; n++) {
        const i = Math.floor(rng() * data.length);
        const numeric = central(nudgeEntry(data, i, (v) => adapter.loadParameters(params.map(([m, x]) => [m, m === name ? v : x] as const))), 1e-2);
        checks.push({ what: `${name}[${i}]`, analytic: grads.get(name)![i], numeric });
      }
    }
    for (let n = 0; n < 3; n++) {
      const i = Math.floor(rng() * W0.length);
      const numeric = central(nudgeEntry(W0, i, (W) => ft.head.loadParameters(W, b0)), 1e-2);
      checks.push({ what: `score.weight[${i}]`, analytic: dW[i], numeric });
    }
    checks.push({
      what: 'score.bias[1]', analytic: db[1], numeric: central((d) => ft.head.loadParameters(W0, Float32Array.of(b0[0], b0[1] + d)), 1e-2),
    });
    // h = 1e-2: the loss is smooth in these, and float32 noise / 2h stays ~1e-6.
    for (const { what, analytic, numeric } of checks) {
      expect(Math.abs(analytic - numeric), `${what}: analytic ${analytic} vs numeric ${numeric}`).toBeLessThan(2e-5 + 2e-2 * Math.abs(numeric));
    }
    // ... and enough of them are far above that floor (post-LN's are ~1e-4).
    for (const m of ['lora_A', 'lora_B']) expect(checks.filter((c) => c.what.includes(m) && Math.abs(c.analytic) > 1e-4).length, m).toBeGreaterThanOrEqual(4);
    ft.dispose();
  });

  it('the base is frozen: a training pass computes the adapter\'s gradients only, and the base refuses optimizers', () => {
    const model = GPT.create(TINY, backend);
    const adapter = LoraAdapter.create(model.config, {}, 1, backend);
    model.attachAdapter(adapter);
    const ids = Int32Array.from({ length: 8 }, (_, i) => i % TINY.vocabSize);
    model.forwardBackward(ids, ids, 1, 8);
    expect(model.namedParameters().every(([, p]) => p.grad() === null)).toBe(true); // no base gradient buffer at all
    expect(adapter.namedGradients().some(([, g]) => g.some((x) => x !== 0))).toBe(true);
    expect(() => model.parameterBuffers()).toThrow(/^parameterBuffers: the model is frozen while a LoRA adapter is attached/);
    expect(() => model.zeroGrad()).toThrow(/^zeroGrad: the model is frozen/);
    expect(() => model.attachAdapter(LoraAdapter.create(model.config, {}, 2, backend))).toThrow(/already has an adapter/);
    const wide = LoraAdapter.create({ nLayer: 2, nEmbd: 16 }, {}, 1, backend);
    expect(model.detachAdapter()).toBe(adapter);
    expect(() => model.attachAdapter(wide)).toThrow('attachAdapter: the adapter was made for 2 layers of 16 channels, the model has 2 of 8');
    model.zeroGrad(); // detached: trainable again
    wide.dispose();
    adapter.dispose();
    model.dispose();
  });
});

describe('LoRA: bad input', () => {
  const model = GPT.create(TINY);
  const be = getBackend();
  afterAll(() => model.dispose());
  const train = classificationTask(8, 31);
  const base: FineTuneOptions = { model, tokenizer, task: { type: 'classification', train }, epochs: 1, batchSize: 8 };

  it.each([
    [{ rank: 0 }, 'finetune: lora.rank must be an integer >= 1, got 0'],
    [{ rank: 2.5 }, 'finetune: lora.rank must be an integer >= 1, got 2.5'],
    [{ alpha: 0 }, 'finetune: lora.alpha must be a finite number > 0, got 0'],
    [{ alpha: -8 }, 'finetune: lora.alpha must be a finite number > 0, got -8'],
    [{ dropout: 1 }, 'finetune: lora.dropout must be in [0, 1), got 1'],
    [{ targets: [] }, 'finetune: lora.targets must be a non-empty list of module names'],
    [{ targets: ['q_proj'] }, 'finetune: lora.targets: "q_proj" matches no linear layer of this GPT-2 (2 layers)'],
    [{ targets: ['c_attn', 'h.5.attn.c_attn'] }, 'finetune: lora.targets: "h.5.attn.c_attn" matches no linear layer'],
    [{ targets: ['ln_1'] }, 'finetune: lora.targets: "ln_1" matches no linear layer'],
  ] as Array<[LoraOptions, string]>)('finetune({ lora: %j }) is refused before anything runs', async (lora, message) => {
    await expect(finetune({ ...base, lora })).rejects.toThrow(message);
    expect(model.adapter).toBeNull();
  });

  it('LoraAdapter.create and a model that already has an adapter', async () => {
    expect(() => LoraAdapter.create(model.config, { rank: -1 }, 1, be)).toThrow('lora.rank must be an integer >= 1, got -1');
    expect(() => LoraAdapter.create(model.config, { targets: 'all' as never }, 1, be)).toThrow(/lora.targets must be a non-empty list/);
    model.attachAdapter(LoraAdapter.create(model.config, {}, 1, be));
    await expect(finetune({ ...base, lora: {} })).rejects.toThrow(/^finetune: the model has a LoRA adapter attached/);
    model.detachAdapter()!.dispose();
  });
});

describe('finetune({ lora })', () => {
  const dir = useScratchDir('ferrogpt-lora-');
  const MODEL = { vocabSize: tokenizer.vocabSize, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32, seed: 1 };
  const train = classificationTask(96, 51);
  const valid = classificationTask(32, 52);
  const task = { type: 'classification' as const, train, validation: valid };
  const settings = { epochs: 2, batchSize: 16, lr: 1e-2, warmup: 2, seed: 5 };

  /** A base model saved as a folder (with its tokenizer), so adapters can name it. */
  const baseFolder = (name: string, cfg: object = {}): Promise<string> => saveModelFolder(join(dir(), name), { ...MODEL, ...cfg }, tokenizer);

  it('trains the adapter and the head only: AdamW state is theirs, the base stays bit for bit what it was', async () => {
    // A model that already has the task tokens and the run's dropout is trained in place.
    const p = prepareForTask(GPT.create(MODEL), tokenizer, { dropout: 0.1 });
    const before = p.model.namedParameters().map(([n, q]) => [n, q.data()] as const);
    const ckpt = join(dir(), 'ckpt-size');
    const r = await finetune({ model: p.model, tokenizer: p.tokenizer, task, ...settings, lora: { rank: 8 }, checkpointDir: ckpt });
    expect(r.model.model).toBe(p.model);
    const adapter = r.model.model.adapter!;
    expect(adapter.config).toEqual({ ...LORA_DEFAULTS, rank: 8 });
    // c_attn of 2 layers at rank 8: 2 · 8 · (32 + 96), and the head 2 · 32 + 2.
    expect(adapter.numParameters()).toBe(2048);
    expect(r.trainableParameters).toBe(2048 + 66);
    const { tensors } = await readSafetensorsFile(join(ckpt, 'optimizer.safetensors'));
    expect(tensors.get('m')!.shape).toEqual([2048]);
    expect(tensors.get('v')!.shape).toEqual([2048]);
    expect(tensors.get('head.m')!.shape).toEqual([66]);
    after: for (const [[name, q], [, data]] of r.model.model.namedParameters().map((x, i) => [x, before[i]] as const)) {
      expect(Buffer.compare(Buffer.from(q.data().buffer), Buffer.from(data.buffer)), name).toBe(0);
      continue after;
    }
    expect(adapter.namedParameters().filter(([n]) => n.includes('lora_B')).every(([, d]) => d.some((x) => x !== 0))).toBe(true); // B learned
    r.model.dispose();
  });

  it("saves PEFT's adapter folder, which loads back onto its base with the same predictions; merged, a plain fine-tuned model", async () => {
    const basePath = await baseFolder('base');
    const model = await GPT.load(basePath);
    const r = await finetune({ model, tokenizer, task, ...settings, lora: { rank: 4, alpha: 16, dropout: 0.1, targets: ['c_attn', 'mlp.c_proj'] } });
    model.dispose();
    const out = join(dir(), 'adapter');
    await r.model.save(out);
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    const V0 = tokenizer.vocabSize;
    expect(config).toMatchObject({
      peft_type: 'LORA', task_type: 'SEQ_CLS', base_model_name_or_path: basePath, r: 4, lora_alpha: 16, lora_dropout: 0.1,
      target_modules: ['c_attn', 'mlp.c_proj'], fan_in_fan_out: true, bias: 'none', modules_to_save: ['score'], trainable_token_indices: [V0, V0 + 1, V0 + 2],
    });
    const { tensors } = await readSafetensorsFile(join(out, 'adapter_model.safetensors'));
    const shapes = Object.fromEntries([...tensors].map(([n, t]) => [n, t.shape]));
    const want: Record<string, number[]> = {
      'base_model.model.score.weight': [2, 32],
      'base_model.model.score.bias': [2],
      'base_model.model.transformer.wte.token_adapter.trainable_tokens_delta': [3, 32],
    };
    for (const l of [0, 1]) {
      want[`base_model.model.transformer.h.${l}.attn.c_attn.lora_A.weight`] = [4, 32];
      want[`base_model.model.transformer.h.${l}.attn.c_attn.lora_B.weight`] = [96, 4];
      want[`base_model.model.transformer.h.${l}.mlp.c_proj.lora_A.weight`] = [4, 128];
      want[`base_model.model.transformer.h.${l}.mlp.c_proj.lora_B.weight`] = [32, 4];
    }
    expect(shapes).toEqual(want);
    await expect(readFile(join(out, 'model.safetensors'))).rejects.toThrow(/ENOENT/); // the adapter only: the base is not copied

    const expected = r.model.predictBatch(valid);
    const same = (got: ReturnType<FineTunedGPT['predictBatch']>, digits: number): void =>
      got.forEach((q, i) => {
        expect(q.label).toBe(expected[i].label);
        q.probabilities!.forEach((x, k) => expect(x).toBeCloseTo(expected[i].probabilities![k], digits));
      });
    const loaded = await FineTunedGPT.load(out); // onto the base it names
    expect(loaded.model.adapter!.config).toEqual(r.model.model.adapter!.config);
    same(loaded.predictBatch(valid), 6);
    // The base given explicitly, as a folder or a GPT (copied, not changed).
    const baseGPT = await GPT.load(basePath);
    const onGPT = await FineTunedGPT.load(out, getBackend(), { base: baseGPT });
    same(onGPT.predictBatch(valid), 6);
    expect(baseGPT.adapter).toBeNull();
    expect(baseGPT.config.vocabSize).toBe(V0);
    // Merged: folded into the weights, saved in the full layout, loaded without the base.
    loaded.mergeAdapter();
    expect(loaded.model.adapter).toBeNull();
    const mergedDir = join(dir(), 'merged');
    await loaded.save(mergedDir);
    await expect(readFile(join(mergedDir, 'adapter_config.json'))).rejects.toThrow(/ENOENT/);
    const merged = await FineTunedGPT.load(mergedDir);
    same(merged.predictBatch(valid), 5);
    // Saving the adapter again into the merged folder replaces the full layout.
    await onGPT.save(mergedDir);
    await expect(readFile(join(mergedDir, 'model.safetensors'))).rejects.toThrow(/ENOENT/);

    // An adapter folder onto a model of another shape, or with no base to go on.
    const wide = await baseFolder('wide', { nEmbd: 16, nHead: 2 });
    await expect(FineTunedGPT.load(out, getBackend(), { base: wide })).rejects.toThrow(/does not fit this model \(2 layers of 16 channels\)|made for another model/);
    const deep = await baseFolder('deep', { nLayer: 3 });
    await expect(FineTunedGPT.load(out, getBackend(), { base: deep })).rejects.toThrow(/the adapter does not fit this model \(3 layers of 32 channels\): missing transformer\.h\.2\.attn\.c_attn\.lora_A\.weight/);
    const orphan = join(dir(), 'orphan');
    await onGPT.save(orphan);
    const cfg = JSON.parse(await readFile(join(orphan, 'adapter_config.json'), 'utf8'));
    await writeFile(join(orphan, 'adapter_config.json'), JSON.stringify({ ...cfg, base_model_name_or_path: null }));
    await expect(FineTunedGPT.load(orphan)).rejects.toThrow(/names no base model .*pass one/);
    await writeFile(join(orphan, 'adapter_config.json'), JSON.stringify({ ...cfg, use_dora: true }));
    await expect(FineTunedGPT.load(orphan)).rejects.toThrow(/use_dora true is not supported/);
    await writeFile(join(orphan, 'adapter_config.json'), JSON.stringify({ ...cfg, r: 0 }));
    await expect(FineTunedGPT.load(orphan)).rejects.toThrow(/adapter\.rank must be an integer >= 1, got 0/);
    for (const m of [r.model, onGPT, merged, loaded]) m.dispose();
    baseGPT.dispose();
  });

  it('a checkpointed LoRA run resumes bit for bit; another adapter, no adapter or another base is refused', async () => {
    const basePath = await baseFolder('base-resume');
    const opts = async (checkpointDir: string, extra: Partial<FineTuneOptions> = {}): Promise<FineTuneOptions> => ({
      model: await GPT.load(basePath), tokenizer, task, ...settings, lora: { rank: 4, dropout: 0.1 }, checkpointDir, ...extra,
    });
    const whole = await finetune(await opts(join(dir(), 'whole')));
    const stop = new AbortController();
    const first = await finetune({ ...(await opts(join(dir(), 'split'))), signal: stop.signal, onStep: (s) => void (s.step === 3 && stop.abort()) });
    expect(first.stopped).toBe(true);
    expect(first.steps).toBe(3);
    const resumed = await finetune({ ...(await opts(join(dir(), 'split'))), resume: true });
    expect(resumed.startStep).toBe(3);
    expect([...first.losses, ...resumed.losses]).toEqual(whole.losses);
    expect(resumed.model.model.adapter!.namedParameters()).toEqual(whole.model.model.adapter!.namedParameters());
    expect(resumed.model.head.namedParameters()).toEqual(whole.model.head.namedParameters());
    // The checkpoint is an adapter folder too: it loads onto its base.
    const ck = await FineTunedGPT.load(join(dir(), 'split'));
    expect(ck.predict(valid[0]).probabilities).toEqual(resumed.model.predict(valid[0]).probabilities);

    await expect(finetune(await opts(join(dir(), 'split'), { lora: { rank: 8, dropout: 0.1 }, resume: true }))).rejects.toThrow(/another LoRA adapter: rank 4 vs 8 \(checkpoint vs run\)/);
    await expect(finetune(await opts(join(dir(), 'split'), { lora: undefined, resume: true }))).rejects.toThrow(/it is a LoRA fine-tuning checkpoint: resume it with the same lora settings/);
    const otherBase = await baseFolder('base-other', { seed: 2 });
    await expect(finetune({ ...(await opts(join(dir(), 'split'))), model: await GPT.load(otherBase), resume: true })).rejects.toThrow(/another base model/);
    for (const m of [whole.model, first.model, resumed.model, ck]) m.dispose();
  });
});

describe('LoRA against full fine-tuning on the synthetic tasks', () => {
  // finetune.test.ts's runs (a tiny random-init model, lr 3e-3, no dropout), and the same
  // runs with a rank-8 adapter on c_attn at the default LoRA ratio of that lr.
  const base = { vocabSize: tokenizer.vocabSize, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32, seed: 1 };
  const strip = (xs: ReturnType<typeof similarityTask>) => xs.map(({ score: _s, ...e }) => e);
  const tasks: Array<[TaskType, TaskExample[], TaskExample[], number, number]> = [
    ['classification', classificationTask(600, 1), classificationTask(200, 2), 6, 0.5],
    ['entailment', entailmentTask(600, 3), entailmentTask(200, 4), 6, 0],
    ['similarity', strip(similarityTask(600, 5)), strip(similarityTask(200, 6)), 8, 0.5],
    ['choice', choiceTask(600, 9), choiceTask(200, 10), 3, 0.5],
  ];
  for (const [type, train, validation, epochs, lambda] of tasks) {
    it(`${type}: rank 8 reaches within 3 points of full fine-tuning, training 6% of its parameters`, async () => {
      const run = async (lora: boolean) => {
        const model = GPT.create(base);
        const r = await finetune({
          model, tokenizer, task: { type, train, validation }, epochs, batchSize: 16, lr: (lora ? LORA_LR_RATIO : 1) * 3e-3, dropout: 0, clfDropout: 0, lambda, warmup: 0.05,
          lora: lora ? { rank: 8 } : undefined,
        });
        model.dispose();
        r.model.dispose();
        return r;
      };
      const full = await run(false);
      const lora = await run(true);
      expect(full.validation!.accuracy).toBeGreaterThanOrEqual(0.95);
      expect(lora.validation!.accuracy).toBeGreaterThanOrEqual(full.validation!.accuracy! - 0.03);
      expect(lora.trainableParameters / full.trainableParameters).toBeLessThan(0.07);
    });
  }
});

describe('ferrogpt finetune --lora', () => {
  const dir = useScratchDir('ferrogpt-lora-cli-');

  it('saves an adapter folder that eval and predict load onto its base; --merge saves the merged model, which scores the same', async () => {
    const base = await saveModelFolder(join(dir(), 'base'), { vocabSize: tokenizer.vocabSize, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32, seed: 1 }, tokenizer);
    await writeJsonl(join(dir(), 'train.jsonl'), classificationTask(600, 41));
    await writeJsonl(join(dir(), 'valid.jsonl'), classificationTask(100, 42));
    const flags = (out: string, ...extra: string[]) => [
      'finetune', '--model', base, '--task', 'classification', '--train', join(dir(), 'train.jsonl'), '--valid', join(dir(), 'valid.jsonl'),
      '--out', out, '--epochs', '3', '--batch', '16', '--lr', '3e-2', '--warmup', '0.05', '--dropout', '0', '--clf-dropout', '0', '--lora', '8', ...extra,
    ];
    const adapterDir = join(dir(), 'adapter');
    const ft = await cli(flags(adapterDir));
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stderr).toMatch(/LoRA r 8 alpha 8 on c_attn/);
    const files = await readdir(adapterDir);
    expect(files).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors', 'tokenizer.json', 'metrics.json']));
    expect(files).not.toContain('model.safetensors');
    const metrics = JSON.parse(await readFile(join(adapterDir, 'metrics.json'), 'utf8'));
    expect(metrics.trainableParameters).toBe(2 * 8 * (32 + 96) + 2 * 32 + 2);
    expect(metrics.validationMetrics.accuracy).toBeGreaterThanOrEqual(0.9);
    const ev = await cli(['eval', '--model', adapterDir, '--data', join(dir(), 'valid.jsonl'), '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout).accuracy).toBeCloseTo(metrics.validationMetrics.accuracy, 12);
    const pr = await cli(['predict', '--model', adapterDir, '--text', 'abxcd']);
    expect(pr.code, pr.stderr).toBe(0);
    const unmerged = JSON.parse(pr.stdout);

    const mergedDir = join(dir(), 'merged');
    const m = await cli(flags(mergedDir, '--merge'));
    expect(m.code, m.stderr).toBe(0);
    expect(await readdir(mergedDir)).toContain('model.safetensors');
    const merged = JSON.parse((await cli(['predict', '--model', mergedDir, '--text', 'abxcd'])).stdout);
    expect(merged.label).toBe(unmerged.label);
    for (const label of Object.keys(unmerged.probabilities)) expect(Math.abs(merged.probabilities[label] - unmerged.probabilities[label])).toBeLessThan(1e-5);

    expect((await cli(['finetune', '--model', base, '--task', 'classification', '--train', join(dir(), 'train.jsonl'), '--lora-alpha', '16'])).stderr).toMatch(/--lora-alpha needs --lora R/);
    expect((await cli(['finetune', '--model', base, '--task', 'classification', '--train', join(dir(), 'train.jsonl'), '--merge'])).stderr).toMatch(/--merge is for --lora runs/);
    expect((await cli([...flags(join(dir(), 'bad')), '--lora-targets', 'q_proj'])).code).not.toBe(0);
  });
});
