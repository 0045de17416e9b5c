// The prompting API: generate (greedy vs the PyTorch fixture, sampling sets, seeds, stop
// strings, streaming, abort, batches), score (with GPT-3's unconditional normalisation),
// zeroShot and fewShot.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { createReferenceBackend } from '../src/backend/reference.js';
import { GPT } from '../src/model/gpt.js';
import { generate, type PromptTokenizer } from '../src/prompt/generate.js';
import { drawToken, resolveSampling, samplingDistribution } from '../src/prompt/sampling.js';
import { logSoftmax, score } from '../src/prompt/score.js';
import { compileTemplate, DEFAULT_TEMPLATE, fewShot } from '../src/prompt/few-shot.js';
import { zeroShot } from '../src/prompt/zero-shot.js';
import { describeEachBackend } from './helpers/backends.js';
import { mulberry32 } from './helpers/random.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/gpt2-tiny', import.meta.url));
const expected = JSON.parse(readFileSync(`${FIXTURE}/expected.json`, 'utf8')) as { greedy: { prompt: number[]; tokens: number[] } };

/** A tokenizer over V ids: id i is the letter 'a' + i % 26 (one byte); eos = V - 1. */
function letters(V: number): PromptTokenizer {
  return {
    eosId: V - 1,
    encode: (text: string) => [...text].map((ch) => ch.charCodeAt(0) % (V - 1)),
    decodeBytes: (ids: ArrayLike<number>) => Uint8Array.from(Array.from(ids, (i) => 97 + (i % 26))),
  };
}

/** Argmax by full recompute (model.forward over the whole sequence each step). */
function greedyFull(model: GPT, prompt: number[], n: number): number[] {
  const V = model.config.vocabSize;
  const seq = [...prompt];
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const T = seq.length;
    const row = model.forward(Int32Array.from(seq), 1, T).subarray((T - 1) * V);
    let best = 0;
    for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
    seq.push(best);
    out.push(best);
  }
  return out;
}

async function collect<C>(it: AsyncIterable<C>): Promise<C[]> {
  const out: C[] = [];
  for await (const c of it) out.push(c);
  return out;
}

describeEachBackend('generate on the PyTorch fixture (gpt2-tiny)', (be: Backend) => {
  it('greedy generation equals argmax decoding by full recompute in the independent reference (30 tokens, sliding past blockSize 16)', async () => {
    const model = await GPT.load(FIXTURE, be);
    const tok = letters(model.config.vocabSize);
    const r = await generate(model, tok, expected.greedy.prompt, { maxNewTokens: 30, temperature: 0, stopAtEos: false }).result;
    expect(r.tokens).toEqual(expected.greedy.tokens);
    expect(r.finishReason).toBe('length');
    // Within blockSize, also equal to our own full recompute.
    expect(r.tokens.slice(0, 11)).toEqual(greedyFull(model, expected.greedy.prompt, 11));
    model.dispose();
  });
});

describe('sampling', () => {
  const logits = Float32Array.from([1, 5, 3, 5, -2, 4, 0, 3]);
  const opts = (o: object) => resolveSampling('test', { temperature: 1, ...o });

  it('top-k keeps the k largest logits (ties with the k-th kept) and draws never leave the set', () => {
    const d = samplingDistribution(logits, opts({ topK: 3 }));
    expect(Array.from(d.ids)).toEqual([1, 3, 5]);
    const d2 = samplingDistribution(logits, opts({ topK: 4 }));
    expect(Array.from(d2.ids).sort()).toEqual([1, 2, 3, 5, 7]); // 3 ties with the 4th
    const rng = mulberry32(3);
    for (let i = 0; i < 5000; i++) expect([1, 3, 5]).toContain(drawToken(d, rng()));
    expect(Math.abs(d.probs.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
  });

  it('top-p keeps the fewest most likely tokens reaching p', () => {
    const probs = [0.5, 0.3, 0.15, 0.05];
    const l = Float32Array.from(probs.map(Math.log));
    expect(Array.from(samplingDistribution(l, opts({ topP: 0.45 })).ids)).toEqual([0]);
    expect(Array.from(samplingDistribution(l, opts({ topP: 0.75 })).ids)).toEqual([0, 1]);
    expect(Array.from(samplingDistribution(l, opts({ topP: 0.9 })).ids)).toEqual([0, 1, 2]);
    // top-k then top-p (renormalised over the top-k set): 0.5/0.8, 0.3/0.8 → p 0.7 needs both.
    expect(Array.from(samplingDistribution(l, opts({ topK: 2, topP: 0.7 })).ids)).toEqual([0, 1]);
    const d = samplingDistribution(l, opts({ topP: 0.75 }));
    const rng = mulberry32(4);
    for (let i = 0; i < 5000; i++) expect([0, 1]).toContain(drawToken(d, rng()));
  });

  it('temperature 0 is the argmax; the options are checked', () => {
    expect(Array.from(samplingDistribution(logits, opts({ temperature: 0 })).ids)).toEqual([1]);
    expect(() => resolveSampling('generate', { topP: 0 })).toThrow(/topP/);
    expect(() => resolveSampling('generate', { temperature: -1 })).toThrow(/temperature/);
    expect(() => resolveSampling('generate', { topK: 1.5 })).toThrow(/topK/);
  });
});

describe('generate', () => {
  const be = createReferenceBackend();
  const V = 40;
  const model = GPT.create({ vocabSize: V, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 16, seed: 9 }, be);
  const tok = letters(V);

  it('top-k and top-p generations only emit tokens of the allowed set (checked against full-recompute logits)', async () => {
    for (const o of [{ topK: 2 }, { topP: 0.3 }, { topK: 5, topP: 0.5, temperature: 1.5 }]) {
      const prompt = [1, 2, 3];
      const r = await generate(model, tok, prompt, { maxNewTokens: 12, seed: 5, stopAtEos: false, ...o }).result;
      const seq = [...prompt];
      for (const id of r.tokens) {
        const T = seq.length;
        const row = model.forward(Int32Array.from(seq), 1, T).slice((T - 1) * V);
        const allowed = samplingDistribution(row, resolveSampling('t', o));
        expect(Array.from(allowed.ids)).toContain(id);
        seq.push(id);
      }
    }
  });

  it('a fixed seed reproduces, another seed differs', async () => {
    const run = (seed: number) => generate(model, tok, 'abc', { maxNewTokens: 20, temperature: 1, seed, stopAtEos: false }).result;
    const [a, b, c] = [await run(7), await run(7), await run(8)];
    expect(a.tokens).toEqual(b.tokens);
    expect(a.text).toBe(b.text);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it('stop strings end generation where they begin and are never emitted, also when streamed', async () => {
    const base = await generate(model, tok, 'hello', { maxNewTokens: 30, temperature: 1, seed: 3, stopAtEos: false }).result;
    expect(base.text.length).toBe(30);
    const stop = base.text.slice(12, 15);
    const at = base.text.indexOf(stop);
    const run = generate(model, tok, 'hello', { maxNewTokens: 30, temperature: 1, seed: 3, stopAtEos: false, stop: ['zzzzzz', stop] });
    const chunks = await collect(run);
    const r = await run.result;
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(base.text.slice(0, at));
    expect(chunks.join('')).toBe(r.text);
    expect(r.tokens).toEqual(base.tokens.slice(0, at + stop.length));
    // A held-back prefix that turns out not to be a stop string is emitted after all.
    const r2 = await generate(model, tok, 'hello', { maxNewTokens: 30, temperature: 1, seed: 3, stopAtEos: false, stop: [base.text.slice(-2) + 'q'] }).result;
    expect(r2.text).toBe(base.text);
    expect(r2.finishReason).toBe('length');
  });

  it('streams unicode safely: chunks are whole characters and join to the decoded bytes', async () => {
    // Even ids decode to 0xC3, odd ids to 0xA9: only the pair C3 A9 ('é') is valid UTF-8.
    const split: PromptTokenizer = { eosId: V - 1, encode: (t) => [...t].map((c) => c.charCodeAt(0) % 2), decodeBytes: (ids) => Uint8Array.from(Array.from(ids, (i) => (i % 2 === 0 ? 0xc3 : 0xa9))) };
    const run = generate(model, split, [0, 1, 0], { maxNewTokens: 25, seed: 1, stopAtEos: false });
    const chunks = await collect(run);
    const r = await run.result;
    const bytes = split.decodeBytes(r.tokens);
    expect(chunks.join('')).toBe(new TextDecoder().decode(bytes));
    for (const c of chunks) expect(c).not.toMatch(/[\uD800-\uDFFF]/); // no half characters
    expect(chunks.join('')).toContain('é');
  });

  it('several prompts decode as one batch with per-prompt results equal to single runs', async () => {
    const prompts = ['ab', 'a much longer prompt', 'xyz'];
    const opt = { maxNewTokens: 10, temperature: 0.9, topK: 10, seed: 2, stopAtEos: false };
    const run = generate(model, tok, prompts, opt);
    const chunks = await collect(run);
    const results = await run.result;
    expect(results).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      const single = await generate(model, tok, prompts[i], opt).result;
      // Same seed stream per prompt index: compare with the batch run's prompt i by seed i.
      expect(results[i].text).toBe(chunks.filter((c) => c.index === i).map((c) => c.text).join(''));
      if (i === 0) expect(results[i].tokens).toEqual(single.tokens);
    }
  });

  it('greedy batch equals greedy singles; eos ends a sequence; abort ends the run', async () => {
    const results = await generate(model, tok, ['ab', 'zzz'], { maxNewTokens: 8, temperature: 0, stopAtEos: false }).result;
    for (const [i, p] of ['ab', 'zzz'].entries()) {
      expect(results[i].tokens).toEqual((await generate(model, tok, p, { maxNewTokens: 8, temperature: 0, stopAtEos: false }).result).tokens);
    }
    // eos: make the first greedy token the tokenizer's eos id.
    const first = results[0].tokens[0];
    const eosTok: PromptTokenizer = { ...tok, eosId: first };
    const e = await generate(model, eosTok, 'ab', { maxNewTokens: 8, temperature: 0 }).result;
    expect(e.finishReason).toBe('eos');
    expect(e.tokens).toEqual([]);
    // abort after the first chunk
    const ac = new AbortController();
    const run = generate(model, tok, 'ab', { maxNewTokens: 50, temperature: 0, stopAtEos: false, signal: ac.signal });
    let n = 0;
    for await (const _ of run) {
      n++;
      ac.abort();
    }
    const r = await run.result;
    expect(r.finishReason).toBe('aborted');
    expect(r.tokens.length).toBeLessThan(50);
    expect(n).toBeGreaterThan(0);
    // breaking out of the loop also ends it as aborted
    const run2 = generate(model, tok, 'ab', { maxNewTokens: 50, temperature: 0, stopAtEos: false });
    for await (const _ of run2) break;
    expect((await run2.result).finishReason).toBe('aborted');
  });
});

describeEachBackend('score', (be: Backend) => {
  it('matches summing full-recompute log-probs and picks the most likely candidate', async () => {
    const V = 37;
    const model = GPT.create({ vocabSize: V, blockSize: 24, nLayer: 2, nHead: 2, nEmbd: 24, seed: 4 }, be);
    const tok = letters(V);
    const ctx = [3, 8, 1, 9, 4];
    const cands = [[7], [2, 2, 5], [11, 30, 6, 1], [0, 5]];
    const r = await score(model, tok, ctx, cands);
    for (let i = 0; i < cands.length; i++) {
      const seq = [...ctx, ...cands[i]];
      const T = seq.length;
      const logits = model.forward(Int32Array.from(seq), 1, T);
      let want = 0;
      for (let t = ctx.length; t < T; t++) want += logSoftmax(logits.slice((t - 1) * V, t * V))[seq[t]];
      expect(Math.abs(r.candidates[i].logProb - want)).toBeLessThan(1e-4);
    }
    // Crafted: single-token candidates; the argmax of the context's next-token logits wins.
    const last = model.forward(Int32Array.from(ctx), 1, ctx.length).slice((ctx.length - 1) * V);
    let top = 0;
    for (let i = 1; i < V; i++) if (last[i] > last[top]) top = i;
    const singles = [[(top + 1) % V], [(top + 2) % V], [top], [(top + 3) % V]];
    expect((await score(model, tok, ctx, singles)).best).toBe(2);
    // Normalisations and batching.
    const byToken = await score(model, tok, ctx, cands, { normalize: 'token', batchSize: 2 });
    byToken.candidates.forEach((c, i) => expect(Math.abs(c.score - r.candidates[i].logProb / cands[i].length)).toBeLessThan(1e-4));
    const byChar = await score(model, tok, 'abc', ['de', 'fgh'], { normalize: 'char' });
    expect(Math.abs(byChar.scores[1] - byChar.candidates[1].logProb / 3)).toBeLessThan(1e-12);
    model.dispose();
  }, 60_000);
}, ['native', 'wasm', 'reference']);

/**
 * log P(candidate | prefix), computed apart from score(): one full forward pass (no KV
 * cache) over prefix + candidate, the log-softmax of each row done here in float64.
 */
function fullLogProb(model: GPT, prefix: readonly number[], candidate: readonly number[]): number {
  const V = model.config.vocabSize;
  const seq = [...prefix, ...candidate];
  const logits = model.forward(Int32Array.from(seq), 1, seq.length);
  let sum = 0;
  for (let t = prefix.length; t < seq.length; t++) {
    const row = logits.subarray((t - 1) * V, t * V); // predicts seq[t]
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let z = 0;
    for (const x of row) z += Math.exp(x - max);
    sum += row[seq[t]] - max - Math.log(z);
  }
  return sum;
}

// Every backend: score()'s KV-cached, batched passes against full recomputes, within 1e-4
// (float32 logits through two layers; the sums are over at most 4 tokens).
describeEachBackend("score, normalize 'unconditional' (GPT-3)", (be: Backend) => {
  const V = 37;
  const blockSize = 24;
  const TOL = 1e-4;
  const ctx = [3, 8, 1, 9, 4];
  const answerContext = [5, 12];
  const cands = [[7], [2, 2, 5], [11, 30, 6, 1], [0, 5]];
  const withModel = (body: (model: GPT) => Promise<void>) => async () => {
    const model = GPT.create({ vocabSize: V, blockSize, nLayer: 2, nHead: 2, nEmbd: 24, seed: 4 }, be);
    try {
      await body(model);
    } finally {
      model.dispose();
    }
  };

  it('logProb, unconditionalLogProb and score equal full-recompute log-probs after the context and after the answer context; best follows', withModel(async (model) => {
    const r = await score(model, letters(V), ctx, cands, { normalize: 'unconditional', answerContext, batchSize: 2 });
    const want = cands.map((c) => {
      const logProb = fullLogProb(model, ctx, c);
      const unconditionalLogProb = fullLogProb(model, answerContext, c);
      return { logProb, unconditionalLogProb, score: logProb - unconditionalLogProb };
    });
    r.candidates.forEach((c, i) => {
      expect(Math.abs(c.logProb - want[i].logProb), `candidate ${i} logProb`).toBeLessThan(TOL);
      expect(Math.abs(c.unconditionalLogProb! - want[i].unconditionalLogProb), `candidate ${i} unconditionalLogProb`).toBeLessThan(TOL);
      expect(Math.abs(c.score - want[i].score), `candidate ${i} score`).toBeLessThan(TOL);
      expect(r.scores[i]).toBe(c.score);
    });
    const ranked = want.map((w, i) => i).sort((a, b) => want[b].score - want[a].score);
    expect(want[ranked[0]].score - want[ranked[1]].score, 'the fixture has a clear winner').toBeGreaterThan(10 * TOL);
    expect(r.best).toBe(ranked[0]);
    // The other modes leave the field out.
    expect((await score(model, letters(V), ctx, cands)).candidates.every((c) => c.unconditionalLogProb === undefined)).toBe(true);
  }), 60_000);

  it("the default answer context is the text 'Answer:'; an empty one is the end-of-text token", withModel(async (model) => {
    const tok = letters(V);
    const byDefault = await score(model, tok, ctx, cands, { normalize: 'unconditional' });
    const empty = await score(model, tok, ctx, cands, { normalize: 'unconditional', answerContext: '' });
    cands.forEach((c, i) => {
      expect(Math.abs(byDefault.candidates[i].unconditionalLogProb! - fullLogProb(model, tok.encode('Answer:'), c))).toBeLessThan(TOL);
      expect(Math.abs(empty.candidates[i].unconditionalLogProb! - fullLogProb(model, [tok.eosId], c))).toBeLessThan(TOL);
    });
  }), 60_000);

  it("ranks differently from 'none' where a candidate's prior likelihood carries it", withModel(async (model) => {
    // Among single-token candidates, the pair (a, b) where a is clearly likelier after the
    // context but b clearly gains more over its likelihood after the answer context: the
    // widest such margin, so every backend agrees on both rankings.
    const cond = Array.from({ length: V }, (_, i) => fullLogProb(model, ctx, [i]));
    const uncond = Array.from({ length: V }, (_, i) => fullLogProb(model, answerContext, [i]));
    let pair = [0, 0];
    let margin = -Infinity;
    for (let a = 0; a < V; a++) {
      for (let b = 0; b < V; b++) {
        const m = Math.min(cond[a] - cond[b], cond[b] - uncond[b] - (cond[a] - uncond[a]));
        if (m > margin) [pair, margin] = [[a, b], m];
      }
    }
    expect(margin, 'a flipping pair exists with a margin well above the tolerance').toBeGreaterThan(0.05);
    const candidates = pair.map((id) => [id]);
    expect((await score(model, letters(V), ctx, candidates)).best).toBe(0);
    expect((await score(model, letters(V), ctx, candidates, { normalize: 'unconditional', answerContext })).best).toBe(1);
  }), 60_000);

  it('bad options are errors naming the problem', withModel(async (model) => {
    const tok = letters(V);
    const bad: Array<[object, RegExp]> = [
      [{ normalize: 'bogus' }, /normalize must be 'none', 'token', 'char' or 'unconditional', got bogus/],
      [{ normalize: 'unconditional', answerContext: 42 }, /answerContext must be a string or an array of token ids/],
      [{ normalize: 'unconditional', answerContext: [1, V] }, /answerContext has token id 37 outside the model's vocabulary \(37\)/],
      [{ normalize: 'token', answerContext: 'A:' }, /answerContext is used only with normalize 'unconditional', got normalize 'token'/],
      // The context is cut to fit; the answer context is not.
      [{ normalize: 'unconditional', answerContext: new Array(21).fill(1) }, /answerContext \(21 tokens\) and the longest candidate \(4 tokens\) do not fit the model's blockSize 24/],
    ];
    for (const [options, message] of bad) await expect(score(model, tok, ctx, cands, options as never), JSON.stringify(options)).rejects.toThrow(message);
    expect((await score(model, tok, new Array(40).fill(1), cands, { normalize: 'unconditional' })).contextTokens).toBe(blockSize - 4);
  }), 60_000);
});

describe('zeroShot and fewShot', () => {
  const be = createReferenceBackend();
  const V = 64;
  const model = GPT.create({ vocabSize: V, blockSize: 64, nLayer: 1, nHead: 2, nEmbd: 16, seed: 1 }, be);
  const tok = letters(V); // one token per character
  const examples = Array.from({ length: 10 }, (_, i) => ({ input: `q${i}`, output: `a${i}` }));

  it('builds the GPT-3 style prompt and drops the earliest demonstrations to fit the context', async () => {
    // instruction "Do it." (6) + per demonstration "Input: qN\nOutput: aN" (20) + separators (2)
    // + query "Input: x\nOutput:" (16); the answer needs 1 + 3 tokens (" yes").
    const r = await fewShot({ model, tokenizer: tok, instruction: 'Do it.', examples, query: 'x', labels: ['yes', 'no'] });
    const fixed = 6 + 2 + 16 + 4;
    expect(r.demonstrations).toBe(Math.floor((64 - fixed) / 22)); // 1
    expect(r.prompt).toBe('Do it.\n\nInput: q9\nOutput: a9\n\nInput: x\nOutput:');
    expect(['yes', 'no']).toContain(r.answer);
    expect(r.scores).toHaveLength(2);
    const k0 = await fewShot({ model, tokenizer: tok, examples, query: 'x', k: 0, labels: ['yes', 'no'] });
    expect(k0.demonstrations).toBe(0);
    expect(k0.prompt).toBe('Input: x\nOutput:');
    const custom = await fewShot({ model, tokenizer: tok, examples: examples.slice(0, 2), query: 'x', labels: ['y'], template: { instruction: '{instruction}', example: '{input} => {output};', separator: '\n' } });
    expect(custom.prompt).toBe('q0 => a0;\nq1 => a1;\nx =>');
    expect(custom.demonstrations).toBe(2);
  });

  it('throws a clear error when the query alone cannot fit', async () => {
    await expect(fewShot({ model, tokenizer: tok, examples, query: 'x'.repeat(60), labels: ['yes'] })).rejects.toThrow(/query does not fit the model's context/);
  });

  it('zeroShot classifies by scoring labels, or generates without them', async () => {
    const c = await zeroShot({ model, tokenizer: tok, instruction: 'Say.', input: 'hi', labels: ['aa', 'bb', 'cc'] });
    expect(c.prompt).toBe('Say.\n\nInput: hi\nOutput:');
    expect(c.demonstrations).toBe(0);
    expect(c.scores![c.index!]).toBe(Math.max(...c.scores!));
    const g = await zeroShot({ model, tokenizer: tok, instruction: 'Say.', input: 'hi', generate: { maxNewTokens: 5, stopAtEos: false } });
    expect(g.answer.length).toBeLessThanOrEqual(5);
    expect(g.finishReason).toBeDefined();
  });

  it("the template's answer cue is the query after its input: 'Output:' by default", () => {
    expect(compileTemplate(DEFAULT_TEMPLATE).answerCue).toBe('Output:');
    expect(compileTemplate({ instruction: '{instruction}', example: 'Q: {input}\nA: {output}', separator: '\n\n' }).answerCue).toBe('A:');
    expect(compileTemplate({ instruction: '{instruction}', example: '{input} => {output};', separator: '\n' }).answerCue).toBe('=>');
  });

  it("normalize 'unconditional' scores the labels after the prompt and after the answer cue, or the answerContext given", async () => {
    const labels = ['yes', 'no', 'maybe'];
    const answers = labels.map((l) => ' ' + l); // the default template's answer prefix
    const f = await fewShot({ model, tokenizer: tok, instruction: 'Do it.', examples, query: 'x', labels, normalize: 'unconditional' });
    const want = await score(model, tok, f.prompt, answers, { normalize: 'unconditional', answerContext: 'Output:' });
    expect(f.scores).toEqual(want.scores);
    expect(f.index).toBe(want.best);
    const given = await fewShot({ model, tokenizer: tok, examples, query: 'x', k: 2, labels, normalize: 'unconditional', answerContext: 'A:' });
    expect(given.scores).toEqual((await score(model, tok, given.prompt, answers, { normalize: 'unconditional', answerContext: 'A:' })).scores);
    const z = await zeroShot({ model, tokenizer: tok, instruction: 'Say.', input: 'hi', labels, normalize: 'unconditional' });
    expect(z.scores).toEqual((await score(model, tok, z.prompt, answers, { normalize: 'unconditional', answerContext: 'Output:' })).scores);
    await expect(fewShot({ model, tokenizer: tok, examples, query: 'x', labels, answerContext: 'A:' })).rejects.toThrow(/answerContext is used only with normalize 'unconditional'/);
  });
});

// A bf16 KV cache (kvDtype 'bf16') through the prompting verbs: the option reaches
// createCache, the forked caches of score() equal separate ones, bad values are errors.
describeEachBackend("kvDtype 'bf16' in generate, score, zeroShot and fewShot", (be: Backend) => {
  const V = 37;
  const config = { vocabSize: V, blockSize: 24, nLayer: 2, nHead: 2, nEmbd: 24, seed: 4 };
  const ctx = [3, 8, 1, 9, 4];
  const cands = [[7], [2, 2, 5], [11, 30, 6, 1], [0, 5]];

  it('greedy generation runs (sliding past blockSize) and is reproducible', async () => {
    const model = GPT.create(config, be);
    const tok = letters(V);
    const run = () => generate(model, tok, ctx, { maxNewTokens: 30, temperature: 0, stopAtEos: false, kvDtype: 'bf16' }).result;
    const r = await run();
    expect(r.tokens).toHaveLength(30);
    expect(r.finishReason).toBe('length');
    expect((await run()).tokens).toEqual(r.tokens);
    model.dispose();
  });

  it('score over a forked bf16 cache equals separate bf16 caches per candidate, and is close to the f32 cache', async () => {
    const model = GPT.create(config, be);
    const tok = letters(V);
    const r = await score(model, tok, ctx, cands, { kvDtype: 'bf16', batchSize: 4 });
    const f32 = await score(model, tok, ctx, cands);
    let worstFork = 0;
    let worstF32 = 0;
    cands.forEach((c, i) => {
      // The same passes without copySequence: the context prefilled into the candidate's own cache.
      const cache = model.createCache(1, ctx.length + 4, { kvDtype: 'bf16' });
      const last = model.forwardCached([ctx], cache);
      let want = logSoftmax(last)[c[0]];
      if (c.length > 1) {
        const all = model.forwardCached([c.slice(0, -1)], cache, { logits: 'all' });
        for (let t = 0; t + 1 < c.length; t++) want += logSoftmax(all.slice(t * V, (t + 1) * V))[c[t + 1]];
      }
      cache.dispose();
      worstFork = Math.max(worstFork, Math.abs(r.candidates[i].logProb - want));
      worstF32 = Math.max(worstF32, Math.abs(r.candidates[i].logProb - f32.candidates[i].logProb) / Math.abs(f32.candidates[i].logProb));
    });
    // Forked vs separate: only the batching of the matmuls differs (measured <= 7e-8).
    expect(worstFork).toBeLessThan(1e-5);
    // Relative to the f32 cache's log-probs (measured 4.1e-6).
    expect(worstF32).toBeLessThan(1e-4);
    model.dispose();
  }, 60_000);

  it('zeroShot and fewShot take it (labels and generation); bad values are errors naming the verb', async () => {
    const model = GPT.create({ ...config, blockSize: 64, vocabSize: 64 }, be);
    const tok = letters(64);
    const labels = ['aa', 'bb', 'cc'];
    const z = await zeroShot({ model, tokenizer: tok, instruction: 'Say.', input: 'hi', labels, kvDtype: 'bf16' });
    expect(z.scores).toEqual((await score(model, tok, z.prompt, labels.map((l) => ' ' + l), { kvDtype: 'bf16' })).scores);
    const g = await fewShot({ model, tokenizer: tok, examples: [{ input: 'a', output: 'b' }], query: 'x', generate: { maxNewTokens: 5, stopAtEos: false }, kvDtype: 'bf16' });
    expect(g.finishReason).toBeDefined();
    const bad = 'f16' as never;
    expect(() => generate(model, tok, ctx, { kvDtype: bad })).toThrow("generate: kvDtype must be 'f32' or 'bf16', got 'f16'");
    await expect(score(model, tok, ctx, cands, { kvDtype: bad })).rejects.toThrow("score: kvDtype must be 'f32' or 'bf16', got 'f16'");
    await expect(zeroShot({ model, tokenizer: tok, instruction: 'Say.', input: 'hi', labels, kvDtype: bad })).rejects.toThrow("zeroShot: kvDtype must be 'f32' or 'bf16', got 'f16'");
    await expect(fewShot({ model, tokenizer: tok, examples: [], query: 'x', k: 1, labels, kvDtype: bad })).rejects.toThrow("fewShot: kvDtype must be 'f32' or 'bf16', got 'f16'");
    model.dispose();
  });
});
