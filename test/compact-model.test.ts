// A model held in bf16 or int8 (src/model/weights.ts): the same passes over compact weights
// on every backend, KV-cached decoding equal to a full pass, save/load bit for bit in every
// dtype, files that store BF16 / F16 / I8 tensors, and training refused with a clear error.

import { writeFile } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { useBackend } from '../src/backend/index.js';
import { dequantizeQ8, fromBf16, quantizeQ8, toBf16 } from '../src/backend/compact.js';
import { saveGPT } from '../src/io/hf-gpt2.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../src/io/safetensors.js';
import { GPT } from '../src/model/gpt.js';
import { LoraAdapter } from '../src/model/lora.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';
import { useScratchDir } from './helpers/folders.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/gpt2-tiny', import.meta.url)); // PyTorch-made, nEmbd 32
const CONFIG = { vocabSize: 80, blockSize: 24, nLayer: 2, nHead: 2, nEmbd: 64, seed: 7 };
const B = 2;
const T = 12;
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 5) % CONFIG.vocabSize);

const reference = await useBackend('reference');

describeEachBackend('compact weights: the passes', (backend: Backend) => {
  for (const [dtype, rtol] of [['bf16', 2e-2], ['int8', 5e-2]] as const) {
    it(`${dtype} logits stay close to f32, and match the reference backend's`, () => {
      const model = GPT.create(CONFIG, backend);
      const f32 = model.forward(ids, B, T);
      expect(model.toDtype(dtype)).toBe(model);
      expect(model.dtype).toBe(dtype);
      const got = model.forward(ids, B, T);
      expectClose(got, f32, rtol, `${backend.name} ${dtype} vs f32`);
      // The same compact model on the specification backend: the kernels agree.
      const ref = GPT.create(CONFIG, reference).toDtype(dtype);
      expectClose(got, ref.forward(ids, B, T), 1e-5, `${backend.name} ${dtype} vs reference`);
      ref.dispose();
      model.dispose();
    });
  }

  for (const dtype of ['bf16', 'int8'] as const) {
    it(`${dtype}: KV-cached decoding gives a full pass's logits (GEMV rows vs GEMM rows)`, () => {
      const model = GPT.create(CONFIG, backend).toDtype(dtype);
      const full = model.forward(ids.subarray(0, T), 1, T); // (T, V)
      const cache = model.createCache(1);
      const V = CONFIG.vocabSize;
      const prompt = Array.from(ids.subarray(0, 5));
      const rows = [model.forwardCached([prompt], cache, { logits: 'all' })];
      for (let t = 5; t < T; t++) rows.push(model.forwardCached([[ids[t]]], cache));
      const cached = new Float32Array(T * V);
      let at = 0;
      for (const r of rows) {
        cached.set(r, at);
        at += r.length;
      }
      expectClose(cached, full, 1e-5, `${backend.name} ${dtype} cached vs full`);
      cache.dispose();
      model.dispose();
    });
  }

  it('int8 needs nEmbd a multiple of 32; training and adapters need f32 weights', () => {
    const narrow = GPT.create({ ...CONFIG, nEmbd: 48, nHead: 2 }, backend);
    expect(() => narrow.toDtype('int8')).toThrow("toDtype: int8 weights need nEmbd to be a multiple of 32 (the int8 block), got 48; use 'bf16' or 'f32'");
    expect(() => narrow.toDtype('f16' as never)).toThrow(`toDtype: dtype must be one of 'f32', 'bf16', 'int8', got "f16"`);
    narrow.dispose();
    const model = GPT.create(CONFIG, backend).toDtype('int8');
    const targets = ids.map((x) => (x + 1) % CONFIG.vocabSize);
    expect(() => model.forwardBackward(ids, targets, B, T)).toThrow(/^forwardBackward: the model holds int8 weights; training and adapters need f32 master weights: load it in f32/);
    expect(() => model.parameterBuffers()).toThrow(/^parameterBuffers: the model holds int8 weights/);
    expect(() => model.attachAdapter(LoraAdapter.create(model.config, {}, 1, backend))).toThrow(/^attachAdapter: the model holds int8 weights/);
    model.toDtype('bf16');
    expect(() => model.trainForward(ids, B, T)).toThrow(/^trainForward: the model holds bf16 weights; training needs f32 master weights \(train converts a bf16 model and trains it in bf16 mixed precision\)/);
    // Back to f32, it trains again.
    model.toDtype('f32');
    expect(Number.isFinite(model.forwardBackward(ids, targets, B, T))).toBe(true);
    model.dispose();
  });
});

// The typed-array backends keep a tensor's storage in a JS array, which only the garbage
// collector releases: dispose must leave nothing that reaches it (the views included).
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
describeEachBackend(
  'compact weights: dispose',
  (backend: Backend) => {
    for (const dtype of ['f32', 'bf16', 'int8'] as const) {
      it(`a ${dtype} model's weights are released by dispose`, async () => {
        // V8 may release an array's memory after the collection that freed it, so settle: a
        // few collections with a turn of the event loop between them.
        const held = async () => {
          for (let i = 0; i < 4; i++) {
            collectGarbage();
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          return process.memoryUsage().arrayBuffers;
        };
        const before = await held();
        const model = GPT.create({ vocabSize: 4096, blockSize: 64, nLayer: 2, nHead: 4, nEmbd: 256, seed: 1 }, backend).toDtype(dtype);
        model.forward(ids, B, T);
        const weights = (await held()) - before;
        const bytes = { f32: 4, bf16: 2, int8: 1 }[dtype] * 4096 * 256;
        expect(weights).toBeGreaterThan(bytes); // the check below measures something
        model.dispose();
        expect((await held()) - before).toBeLessThan(bytes / 8);
      });
    }
  },
  ['native', 'reference'],
);

describe('compact weights: folders', () => {
  const dir = useScratchDir('ferrogpt-compact-');
  const bits = (m: GPT) => m.namedParameters().map(([name, p]) => [name, Array.from(p.data())] as const);

  for (const dtype of ['bf16', 'int8'] as const) {
    it(`${dtype}: save writes the dtype, load reads it back bit for bit, and loads into other dtypes`, async () => {
      const model = GPT.create(CONFIG, reference).toDtype(dtype);
      const out = join(dir(), dtype);
      await model.save(out);
      const { tensors } = await readSafetensorsFile(join(out, 'model.safetensors'));
      const qkv = tensors.get('transformer.h.0.attn.c_attn.weight')!;
      expect(qkv.dtype).toBe(dtype === 'bf16' ? 'BF16' : 'I8');
      expect(qkv.shape).toEqual([64, 192]); // HF's Conv1D layout, (C, 3C)
      expect(tensors.get('transformer.h.0.ln_1.weight')!.dtype).toBe('F32');
      expect(tensors.get('transformer.wpe.weight')!.dtype).toBe('F32');
      if (dtype === 'int8') {
        expect(tensors.get('transformer.h.0.attn.c_attn.weight_scale')!.shape).toEqual([2, 192]); // (C/32, 3C)
        expect(tensors.get('transformer.wte.weight_scale')!.shape).toEqual([80, 2]); // (V, C/32)
      }

      const back = await GPT.load(out, reference);
      expect(back.dtype).toBe(dtype);
      expect(bits(back)).toEqual(bits(model));
      expect(back.forward(ids, B, T)).toEqual(model.forward(ids, B, T));
      // Saving what was loaded writes the same file.
      await back.save(join(dir(), `${dtype}-again`));
      const again = await readSafetensorsFile(join(dir(), `${dtype}-again`, 'model.safetensors'));
      for (const [name, t] of tensors) expect(again.tensors.get(name)!.raw, name).toEqual(t.raw);

      // The folder in f32: exact widening, or dequantized int8.
      const f32 = await GPT.load(out, { dtype: 'f32', backend: reference });
      expect(f32.dtype).toBe('f32');
      expect(bits(f32)).toEqual(bits(model));
      // An f32 folder loaded as `dtype` is toDtype's model, bit for bit.
      const plain = GPT.create(CONFIG, reference);
      await plain.save(join(dir(), `${dtype}-f32`));
      const loaded = await GPT.load(join(dir(), `${dtype}-f32`), { dtype, backend: reference });
      expect(bits(loaded)).toEqual(bits(plain.toDtype(dtype)));
      for (const m of [model, back, f32, plain, loaded]) m.dispose();
    });
  }

  it('a BF16 or F16 Hugging Face file loads as bf16 without going through f32 values it does not hold', async () => {
    const src = await GPT.load(FIXTURE, reference);
    // The fixture's tensors written as BF16 (all of them, as save_pretrained does for a bfloat16 model) and as F16.
    const params = src.namedParameters();
    const bf = join(dir(), 'hf-bf16');
    await saveGPT(bf, src.config, params.map(([name, p]) => [name, { dtype: 'bf16', data: toBf16(p.data()) }, p.shape] as const));
    const asBf16 = await GPT.load(bf, { dtype: 'bf16', backend: reference });
    expect(asBf16.dtype).toBe('bf16');
    const wte = asBf16.namedParameters().find(([n]) => n === 'transformer.wte.weight')![1].data();
    expect(wte).toEqual(fromBf16(toBf16(params[0][1].data())));
    // The LayerNorms of a BF16 file are widened to the f32 the model keeps them in.
    const ln = asBf16.namedParameters().find(([n]) => n === 'transformer.h.0.ln_1.weight')![1].data();
    expect(ln).toEqual(fromBf16(toBf16(params.find(([n]) => n === 'transformer.h.0.ln_1.weight')![1].data())));
    // Loaded in f32 (the default for a Hugging Face folder): every value widened exactly.
    const asF32 = await GPT.load(bf, reference);
    expect(asF32.dtype).toBe('f32');
    for (const [[name, p], [, q]] of asF32.namedParameters().map((e, i) => [e, params[i]] as const)) expect(p.data(), name).toEqual(fromBf16(toBf16(q.data())));
    for (const m of [src, asBf16, asF32]) m.dispose();
  });

  it('an I8 tensor without its scales, or scales on an F32 tensor, is an error naming it', async () => {
    const model = GPT.create(CONFIG, reference).toDtype('int8');
    const out = join(dir(), 'bad-int8');
    await model.save(out);
    const { tensors } = await readSafetensorsFile(join(out, 'model.safetensors'));
    const name = 'transformer.h.1.mlp.c_fc.weight';
    const write = (drop: (n: string) => boolean, extra: Array<[string, { shape: number[]; data: Float32Array | Int8Array | Uint16Array }]> = []) =>
      writeSafetensorsFile(join(out, 'model.safetensors'), [...[...tensors].filter(([n]) => !drop(n)).map(([n, t]) => [n, { shape: t.shape, data: t.raw as Float32Array | Int8Array | Uint16Array }] as const), ...extra]);
    await write((n) => n === `${name}_scale`);
    await expect(GPT.load(out, reference)).rejects.toThrow(`GPT.load: ${name} is I8 but there is no ${name}_scale tensor (an int8 weight needs its scales)`);
    await write(() => false, [['transformer.wpe.weight_scale', { shape: [24, 2], data: new Float32Array(48) }]]);
    await expect(GPT.load(out, reference)).rejects.toThrow('GPT.load: transformer.wpe.weight_scale scales a F32 tensor; only I8 tensors have scales');
    await write((n) => n === `${name}_scale`, [[`${name}_scale`, { shape: [2, 100], data: new Float32Array(200) }]]);
    await expect(GPT.load(out, reference)).rejects.toThrow(`GPT.load: ${name}_scale must be F32 of shape [2, 256] (one scale per 32 weights along the input), got F32 [2, 100]`);
    const q = Int8Array.from(tensors.get(name)!.raw as Int8Array);
    q[5] = -128;
    await write((n) => n === name, [[name, { shape: tensors.get(name)!.shape, data: q }]]);
    await expect(GPT.load(out, reference)).rejects.toThrow(`GPT.load: ${name}[5] is -128; int8 weights are in -127..127`);
    await writeFile(join(out, 'config.json'), JSON.stringify({ ...JSON.parse(JSON.stringify((await import('../src/io/hf-gpt2.js')).configToHF(model.config))), ferrogpt: { dtype: 'int4' } }));
    await expect(GPT.load(out, reference)).rejects.toThrow(`config.json: ferrogpt.dtype: dtype must be one of 'f32', 'bf16', 'int8', got "int4"`);
    await expect(GPT.load(out, { dtype: 'fp8' as never, backend: reference })).rejects.toThrow(`GPT.load: dtype must be one of 'f32', 'bf16', 'int8', got "fp8"`);
    model.dispose();
  });

  it('int8 quantizes wte and the linear layers, keeps wpe, the LayerNorms and biases exact', () => {
    const model = GPT.create(CONFIG, reference);
    const before = new Map(model.namedParameters().map(([n, p]) => [n, p.data()]));
    model.toDtype('int8');
    for (const [name, p] of model.namedParameters()) {
      const was = before.get(name)!;
      if (p.shape.length === 2 && name !== 'transformer.wpe.weight') {
        const { q, scales } = quantizeQ8(was);
        expect(p.data(), name).toEqual(dequantizeQ8(q, scales));
      } else {
        expect(p.data(), name).toEqual(was);
      }
    }
    model.dispose();
  });
});
