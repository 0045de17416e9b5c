// The training loop and its data pipeline (src/train/train.ts, data.ts).
//
// Data: text → token file → windows reproduces the encoded text; encoding a file in many
// chunks gives exactly the ids of encoding it whole (BPE, char and GPT-2 tokenizers, with
// multi-byte characters, runs of spaces, CRLF and special tokens across the cuts); the
// file is rebuilt only when its sources change.
// Loop: determinism, the loss falls on a tiny model, gradAccum=2 with batch b equals batch
// 2b, the schedules reach the optimizer, evaluation matches the training loss, abort.
// Runs on native and reference (the specification), tiny sizes (2 shared cores).

import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { GPT } from '../src/model/gpt.js';
import { Tokenizer } from '../src/tokenizer/tokenizer.js';
import {
  TokenDataset,
  WindowSampler,
  dtypeForVocab,
  encodeFileChunks,
  evalWindowStarts,
  lastSafeSplit,
  prepareData,
} from '../src/train/data.js';
import { learningRate } from '../src/train/schedule.js';
import { evaluate, train, type StepInfo } from '../src/train/train.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';

const CORPUS = fileURLToPath(new URL('../data/corpus.txt', import.meta.url));
const corpus = await readFile(CORPUS, 'utf8');
const text = corpus.slice(0, 30_000);
const charTok = Tokenizer.trainFromTexts([text], { type: 'char' });
const ids = charTok.encode(text);

// Text that stresses the cut points: multi-byte characters (2, 3 and 4 UTF-8 bytes, so
// chunk borders fall inside characters), runs of spaces, tabs, CRLF, blank lines, digits,
// contractions, punctuation runs and special tokens.
const TRICKY =
  "Café naïve — 日本語のテキスト 🙂🚀 it's   three  spaces\tand\ttabs\r\nCRLF line\r\n\r\n" +
  "   leading spaces, trailing   \n\n\n123 4567 x<|endoftext|>y <|endoftext|> z we'll they've ?!... end\n";
const trickyText = Array.from({ length: 40 }, (_, i) => `${TRICKY}${corpus.slice(i * 300, i * 300 + 300)} `).join('');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferrogpt-train-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cfg = (vocabSize: number, dropout = 0) => ({ vocabSize, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32, dropout, seed: 7 });

describe('data pipeline', () => {
  it('token file → windows reproduce the encoded text', async () => {
    const src = join(dir, 'roundtrip.txt');
    await writeFile(src, text);
    const out = join(dir, 'roundtrip.bin');
    const { meta, rebuilt } = await prepareData(src, { tokenizer: charTok, out, chunkBytes: 4096 });
    expect(rebuilt).toBe(true);
    expect(meta).toMatchObject({ dtype: 'uint16', vocabSize: charTok.vocabSize, count: ids.length, files: [{ path: src, bytes: Buffer.byteLength(text) }] });
    expect((await readFile(out)).length).toBe(ids.length * 2);

    const ds = TokenDataset.open(out); // default valFraction 0.1
    try {
      expect(ds.valTokens).toBe(Math.floor(ids.length * 0.1));
      expect(ds.trainTokens + ds.valTokens).toBe(ids.length);
      expect(Array.from(ds.read(0, ds.count))).toEqual(ids);
      expect(charTok.decode(ds.read(0, ds.count))).toBe(text);

      // Every sampled window is a run of the encoded text, inside the train split, with
      // targets = ids shifted by one.
      const T = 12;
      const sampler = new WindowSampler(ds, { batchSize: 4, blockSize: T, seed: 3 });
      const joined = ids.join(',');
      for (let k = 0; k < 5; k++) {
        const batch = sampler.next();
        for (let b = 0; b < 4; b++) {
          const row = [...batch.ids.subarray(b * T, (b + 1) * T), batch.targets[(b + 1) * T - 1]];
          expect(Array.from(batch.targets.subarray(b * T, (b + 1) * T - 1))).toEqual(row.slice(1, T));
          expect(joined.includes(row.join(','))).toBe(true);
          const trainText = charTok.decode(ids.slice(0, ds.trainTokens));
          expect(trainText.includes(charTok.decode(row))).toBe(true);
        }
      }
      expect(sampler.state()).toEqual({ seed: 3, drawn: 20 });

      // The fixed val windows lie in the val split.
      const starts = evalWindowStarts(ds, T, 6);
      expect(starts.length).toBe(6);
      for (const s of starts) expect(s >= ds.trainTokens && s + T + 1 <= ds.count).toBe(true);
      expect(evalWindowStarts(ds, T, 6)).toEqual(starts);
    } finally {
      ds.close();
    }
  });

  it('sampler state restores the exact window sequence', () => {
    const ds = TokenDataset.fromTokens(ids, { vocabSize: charTok.vocabSize });
    const a = new WindowSampler(ds, { batchSize: 3, blockSize: 8, seed: 11 });
    a.next();
    const saved = JSON.parse(JSON.stringify(a.state()));
    const next = [a.next(), a.next()];
    const b = new WindowSampler(ds, { batchSize: 3, blockSize: 8, seed: 99 });
    b.loadState(saved);
    expect([b.next(), b.next()]).toEqual(next);
  });

  it.each([
    ['char', () => Tokenizer.trainFromTexts([trickyText], { type: 'char' })],
    ['trained bpe', () => Tokenizer.trainFromTexts([trickyText], { vocabSize: 400 })],
    ['gpt2', () => Tokenizer.gpt2()],
  ])('chunked encoding equals whole-text encoding (%s)', async (_name, make) => {
    const tok = await make();
    const src = join(dir, 'tricky.txt');
    await writeFile(src, trickyText);
    const whole = tok.encode(await readFile(src, 'utf8'));
    // Small chunks: many cuts, several inside multi-byte characters.
    const pieces: number[][] = [];
    let bytes = 0;
    for await (const p of encodeFileChunks(src, tok, 777, (n) => (bytes += n))) pieces.push(p);
    expect(bytes).toBe(Buffer.byteLength(trickyText));
    expect(pieces.length).toBeGreaterThan(20);
    expect(pieces.flat()).toEqual(whole);

    const out = join(dir, `tricky-${tok.vocabSize}.bin`);
    await prepareData(src, { tokenizer: tok, out, chunkBytes: 777 });
    const ds = TokenDataset.open(out);
    try {
      expect(Array.from(ds.read(0, ds.count))).toEqual(whole);
    } finally {
      ds.close();
    }
  });

  it('lastSafeSplit cuts only at a space between two non-spaces, outside special tokens', () => {
    expect(lastSafeSplit('ab cd')).toBe(2);
    expect(lastSafeSplit('ab  cd')).toBe(-1);
    expect(lastSafeSplit('ab \ncd')).toBe(-1);
    expect(lastSafeSplit('ab cd ')).toBe(2);
    expect(lastSafeSplit('a b<|x y|>', ['<|x y|>'])).toBe(1);
  });

  it('a directory of .txt files: sorted, separated by <|endoftext|>, rebuilt only when changed', async () => {
    const corpusDir = join(dir, 'docs');
    await mkdir(join(corpusDir, 'sub'), { recursive: true });
    await writeFile(join(corpusDir, 'b.txt'), 'second file');
    await writeFile(join(corpusDir, 'a.txt'), 'first file');
    await writeFile(join(corpusDir, 'sub', 'c.txt'), 'third');
    await writeFile(join(corpusDir, 'ignored.md'), 'not text');
    const tok = Tokenizer.trainFromTexts(['first file second file third'], { type: 'char' });
    const out = join(dir, 'docs.bin');
    const first = await prepareData(corpusDir, { tokenizer: tok, out });
    expect(first.meta.files.map((f) => f.path)).toEqual(['a.txt', 'b.txt', 'sub/c.txt']);
    const expected = [...tok.encode('first file'), tok.eosId, ...tok.encode('second file'), tok.eosId, ...tok.encode('third')];
    const ds = TokenDataset.open(out, { valFraction: 0 });
    expect(Array.from(ds.read(0, ds.count))).toEqual(expected);
    ds.close();

    expect((await prepareData(corpusDir, { tokenizer: tok, out })).rebuilt).toBe(false);
    await writeFile(join(corpusDir, 'b.txt'), 'second file!');
    const changed = await prepareData(corpusDir, { tokenizer: tok, out });
    expect(changed.rebuilt).toBe(true);
    expect(changed.meta.count).toBe(expected.length + 1);
    const otherTok = Tokenizer.trainFromTexts(['first file second file third!?'], { type: 'char' });
    expect((await prepareData(corpusDir, { tokenizer: otherTok, out })).rebuilt).toBe(true);
  });

  it('uint32 for vocabularies over 65535; clear errors for bad or stale files', async () => {
    expect(dtypeForVocab(50257)).toBe('uint16');
    expect(dtypeForVocab(65535)).toBe('uint16');
    expect(dtypeForVocab(65536)).toBe('uint32');
    const out = join(dir, 'stale.bin');
    await writeFile(join(dir, 'stale.txt'), text.slice(0, 1000));
    await prepareData(join(dir, 'stale.txt'), { tokenizer: charTok, out });
    await writeFile(out, new Uint8Array(10));
    expect(() => TokenDataset.open(out)).toThrow(/has 10 bytes.*rebuild it/);
    expect(() => TokenDataset.open(join(dir, 'missing.bin'))).toThrow(/cannot read/);
    const tiny = TokenDataset.fromTokens([1, 2, 3, 4, 5], { vocabSize: 10 });
    expect(() => new WindowSampler(tiny, { batchSize: 1, blockSize: 8, seed: 0 })).toThrow(/fewer than blockSize \+ 1/);
    expect(() => TokenDataset.fromTokens([1, 20], { vocabSize: 10 })).toThrow(/out of range/);
  });
});

describeEachBackend(
  'train',
  (backend: Backend) => {
    const data = TokenDataset.fromTokens(ids, { vocabSize: charTok.vocabSize });
    const V = charTok.vocabSize;
    const run = async (opts: Partial<Parameters<typeof train>[0]> & { dropout?: number } = {}) => {
      const { dropout = 0, ...rest } = opts;
      const model = GPT.create(cfg(V, dropout), backend);
      const steps: StepInfo[] = [];
      const result = await train({ model, data, steps: 6, batchSize: 4, lr: 3e-3, evalBatches: 0, onStep: (s) => void steps.push(s), ...rest });
      return { model, steps, result };
    };

    it('is deterministic: same seed → identical losses (dropout on)', async () => {
      const a = await run({ dropout: 0.1, gradAccum: 2 });
      const b = await run({ dropout: 0.1, gradAccum: 2 });
      expect(a.result.losses).toEqual(b.result.losses);
      expect(a.model.namedParameters()[0][1].data()).toEqual(b.model.namedParameters()[0][1].data());
      const c = await run({ dropout: 0.1, gradAccum: 2, seed: 1 });
      expect(c.result.losses).not.toEqual(a.result.losses);
      for (const m of [a, b, c]) m.model.dispose();
    });

    it('the loss falls on a tiny model', async () => {
      const { model, result } = await run({ steps: 40, batchSize: 8, lr: 1e-2, warmup: 4, schedule: 'cosine', evalBatches: 2 });
      const first = result.losses[0];
      const last = result.losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
      expect(first).toBeGreaterThan(Math.log(V) - 0.5); // starts near uniform
      expect(last).toBeLessThan(first - 1.5);
      expect(result.valLoss!).toBeLessThan(first - 1.0);
      model.dispose();
    });

    it('gradAccum=2 with batch b equals batch 2b (dropout 0)', async () => {
      // The same windows either way: micro-batch 2 draws the sampler's windows 4..7.
      const common = { steps: 4, lr: 1e-2, gradClip: 0.5 };
      const a = await run({ ...common, batchSize: 4, gradAccum: 2 });
      const b = await run({ ...common, batchSize: 8, gradAccum: 1 });
      expectClose(a.result.losses, b.result.losses, 1e-6, 'losses');
      expectClose(a.steps.map((s) => s.gradNorm), b.steps.map((s) => s.gradNorm), 1e-5, 'grad norms');
      // The gradients of one update (train leaves the last update's gradients in place).
      // Parameters are not compared after several steps: Adam divides by sqrt(v), which
      // magnifies rounding in gradients that are ~0 (e.g. the query biases).
      const c = await run({ steps: 1, gradClip: 0, batchSize: 4, gradAccum: 2 });
      const d = await run({ steps: 1, gradClip: 0, batchSize: 8, gradAccum: 1 });
      const gc = c.model.namedParameters();
      const gd = d.model.namedParameters();
      gc.forEach(([name, p], i) => expectClose(p.grad()!, gd[i][1].grad()!, 1e-5, `d ${name}`, 1e-3));
      for (const m of [a, b, c, d]) m.model.dispose();
    });

    it.each(['constant', 'linear', 'cosine'] as const)('applies the %s schedule', async (schedule) => {
      const { model, steps } = await run({ steps: 8, warmup: 3, schedule, lr: 1e-2, minLr: 1e-3 });
      const expected = steps.map((_, i) => learningRate(i, { kind: schedule, maxLr: 1e-2, minLr: 1e-3, warmupSteps: 3, totalSteps: 8 }));
      expect(steps.map((s) => s.lr)).toEqual(expected);
      expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      model.dispose();
    });

    it('evaluates every evalEvery steps and after the last; eval loss = training loss of the same windows', async () => {
      const { model, steps, result } = await run({ steps: 5, evalEvery: 2, evalBatches: 2 });
      expect(steps.filter((s) => s.valLoss !== undefined).map((s) => s.step)).toEqual([2, 4, 5]);
      expect(result.valLosses.map((v) => v.step)).toEqual([2, 4, 5]);
      expect(result.valLoss).toBe(result.valLosses[2].loss);
      expect(evaluate(model, data, { batchSize: 4, blockSize: 16, batches: 2 })).toBe(result.valLoss);
      // The same windows through forwardBackward (dropout 0) give the same mean loss.
      const T = 16;
      const starts = evalWindowStarts(data, T, 8);
      const x = new Int32Array(8 * T);
      const y = new Int32Array(8 * T);
      starts.forEach((s, r) => {
        const w = data.read(s, T + 1);
        x.set(w.subarray(0, T), r * T);
        y.set(w.subarray(1), r * T);
      });
      expect(Math.abs(model.forwardBackward(x, y, 8, T) - result.valLoss!)).toBeLessThan(1e-5);
      model.dispose();
    });

    it('stops on abort after the current step; epochs set the step count', async () => {
      const ac = new AbortController();
      const stopped = await run({ steps: 10, signal: ac.signal, onStep: (s) => (s.step === 3 ? ac.abort() : undefined) });
      expect(stopped.result).toMatchObject({ step: 3, stopped: true });
      expect(stopped.result.losses.length).toBe(3);
      const epochs = await run({ steps: undefined, epochs: 0.01 });
      expect(epochs.result.step).toBe(Math.ceil((0.01 * data.trainTokens) / (4 * 16)));
      for (const m of [stopped, epochs]) m.model.dispose();
    });

    it('rejects bad options with clear errors', async () => {
      await expect(run({ epochs: 1 })).rejects.toThrow(/steps or epochs, not both/);
      await expect(run({ blockSize: 32 })).rejects.toThrow(/exceeds the model's blockSize/);
      await expect(run({ gradAccum: 0 })).rejects.toThrow(/gradAccum must be an integer >= 1/);
      await expect(run({ resume: true })).rejects.toThrow(/resume needs checkpointDir/);
      const model = GPT.create(cfg(V - 10), backend);
      await expect(train({ model, data, steps: 1 })).rejects.toThrow(/vocabulary \(\d+\) is larger than the model's/);
      model.dispose();
    });
  },
  ['native', 'reference'],
);
