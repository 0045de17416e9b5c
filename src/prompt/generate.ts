// generate(): KV-cached text generation, streamed.
//
//   const run = generate(model, tokenizer, 'It is a truth', { maxNewTokens: 50, temperature: 0.8, topK: 40, seed: 1 });
//   for await (const text of run) process.stdout.write(text);   // chunks as they are produced
//   const { text, tokens, finishReason } = await run.result;
//
//   const runs = generate(model, tokenizer, ['Once', 'Twice'], { stop: ['\n'] });
//   for await (const { index, text } of runs) ...;               // several prompts decode as one batch
//   const results = await runs.result;                           // one result per prompt
//
// Awaiting `run.result` without iterating runs the generation to the end. Breaking out of
// the loop (or aborting `signal`) ends it with finishReason 'aborted'; the result then holds
// what was produced so far. Generation yields to the event loop between tokens, so timers
// and an AbortSignal fire while it runs.
//
// The prompt is encoded once (one batched prefill over the KV cache, prompts of different
// lengths right-padded), then each step decodes one token per unfinished sequence. Beyond
// the model's blockSize the context slides (src/model/kv-cache.ts). An empty prompt starts
// from the end-of-text token, as GPT-2's unconditional samples do.
//
// Text: byte-level BPE tokens can end inside a multi-byte character, so each sequence's bytes
// go through a streaming UTF-8 decoder and only complete characters are emitted (an
// incomplete tail at the very end becomes U+FFFD). Stop strings end a sequence where they
// begin and are not emitted: text that could be the start of a stop string is held back until
// it is known not to be one. `tokens` holds every generated id (through the token that
// completed a stop string; never the end-of-text id).

import type { GPT } from '../model/gpt.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { resolveKvDtype, type KVCacheOptions, type KVDType } from '../model/kv-cache.js';
import { applyRepetitionPenalty, drawToken, resolveSampling, samplingDistribution, uniformDraw, type SamplingOptions } from './sampling.js';

/** What generate() needs of a tokenizer (ferrogpt's Tokenizer has it). */
export type PromptTokenizer = Pick<Tokenizer, 'encode' | 'decodeBytes' | 'eosId'>;

export type FinishReason = 'length' | 'stop' | 'eos' | 'aborted';

export interface GenerateOptions extends SamplingOptions, KVCacheOptions {
  /** Tokens to generate per prompt at most. Default 100. */
  maxNewTokens?: number;
  /** Strings that end generation; the text stops where the first one begins. Default none. */
  stop?: string[];
  /** Seed of the draws (u32). Same seed, same output (on a given backend). Default 0. */
  seed?: number;
  /** Aborts generation: the run ends with finishReason 'aborted'. */
  signal?: AbortSignal;
  /** End a sequence when it draws the end-of-text token (not emitted). Default true. */
  stopAtEos?: boolean;
  // kvDtype (KVCacheOptions): the KV cache's element type, 'f32' (default) or 'bf16'
  // (half the cache memory), passed to model.createCache.
}

export interface GenerationResult {
  /** The generated text (the prompt not included), cut before a stop string. */
  text: string;
  /** Every generated token id (see the header for stop strings); never the end-of-text id. */
  tokens: number[];
  /** The prompt's token ids as the model saw them. */
  promptTokens: number[];
  finishReason: FinishReason;
}

/** A text chunk of one of several prompts. */
export interface GenerationChunk {
  index: number;
  text: string;
}

/** A running generation: iterate it for text chunks, await `result` for the outcome. */
export interface Generation<Chunk, Result> extends AsyncIterable<Chunk> {
  readonly result: Promise<Result>;
}

/** Generates from one prompt (text, or token ids); iterating yields text chunks. */
export function generate(model: GPT, tokenizer: PromptTokenizer, prompt: string | readonly number[], options?: GenerateOptions): Generation<string, GenerationResult>;
/** Generates from several prompts as one batch; iterating yields { index, text } chunks. */
export function generate(model: GPT, tokenizer: PromptTokenizer, prompts: ReadonlyArray<string | readonly number[]>, options?: GenerateOptions): Generation<GenerationChunk, GenerationResult[]>;
export function generate(
  model: GPT,
  tokenizer: PromptTokenizer,
  prompts: string | readonly number[] | ReadonlyArray<string | readonly number[]>,
  options: GenerateOptions = {},
): Generation<string, GenerationResult> | Generation<GenerationChunk, GenerationResult[]> {
  const single = typeof prompts === 'string' || (Array.isArray(prompts) && prompts.every((p) => typeof p === 'number'));
  const list = (single ? [prompts] : prompts) as ReadonlyArray<string | readonly number[]>;
  const job = new GenerationJob(model, tokenizer, list, options);
  if (single) return new Run(job, (c) => c.text, (r) => r[0]);
  return new Run(job, (c) => c, (r) => r);
}

class Run<Chunk, Result> implements Generation<Chunk, Result> {
  private iterating = false;
  private readonly done: Promise<GenerationResult[]>;
  private resolve!: (r: GenerationResult[]) => void;
  private reject!: (e: unknown) => void;

  constructor(private readonly job: GenerationJob, private readonly chunk: (c: GenerationChunk) => Chunk, private readonly pick: (r: GenerationResult[]) => Result) {
    this.done = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.done.catch(() => {}); // surfaced through result / the iterator, not as unhandled
  }

  get result(): Promise<Result> {
    if (!this.iterating) void this.drain();
    return this.done.then(this.pick);
  }

  [Symbol.asyncIterator](): AsyncIterator<Chunk> {
    if (this.iterating) throw new Error('generate: a generation can be iterated once');
    this.iterating = true;
    return this.iterate();
  }

  private async drain(): Promise<void> {
    for await (const _ of this) {
      // chunks are kept in the results
    }
  }

  private async *iterate(): AsyncGenerator<Chunk> {
    try {
      for (;;) {
        const chunks = this.job.step();
        for (const c of chunks) yield this.chunk(c);
        if (this.job.finished) break;
        await nextTick();
      }
      this.resolve(this.job.results());
    } catch (e) {
      this.job.dispose();
      this.reject(e);
      throw e;
    } finally {
      // The consumer broke out of the loop: end what is left as aborted.
      if (!this.job.finished) {
        this.job.abort();
        this.resolve(this.job.results());
      }
    }
  }
}

/** Yields to the event loop (a macrotask, so timers and abort signals can fire). */
function nextTick(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => void };
  return new Promise((r) => (g.setImmediate ? g.setImmediate(r) : setTimeout(r, 0)));
}

interface SeqState {
  prompt: number[];
  tokens: number[];
  seen: Set<number>;
  decoder: TextDecoder;
  pending: string; // decoded text not yet emitted (a possible stop-string prefix)
  text: string; // emitted text
  finish: FinishReason | null;
}

/** The state of one generate() call; step() runs the next prefill or decode step. */
class GenerationJob {
  private readonly seqs: SeqState[];
  private readonly sampling: ReturnType<typeof resolveSampling>;
  private readonly maxNewTokens: number;
  private readonly stop: string[];
  private readonly seed: number;
  private readonly stopAtEos: boolean;
  private readonly signal: AbortSignal | undefined;
  private cache: ReturnType<GPT['createCache']> | null = null;
  private readonly kvDtype: KVDType;
  private logits: Float32Array | null = null; // (B, V) of the last step
  private stepNo = 0;
  finished = false;

  constructor(private readonly model: GPT, private readonly tokenizer: PromptTokenizer, prompts: ReadonlyArray<string | readonly number[]>, o: GenerateOptions) {
    const fn = 'generate';
    const { maxNewTokens = 100, stop = [], seed = 0, stopAtEos = true, signal } = o;
    if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`${fn}: maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s === '')) throw new Error(`${fn}: stop must be an array of non-empty strings`);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`${fn}: seed must be an integer in [0, 2^32), got ${seed}`);
    if (prompts.length === 0) throw new Error(`${fn}: no prompts`);
    this.sampling = resolveSampling(fn, o);
    this.kvDtype = resolveKvDtype(fn, o.kvDtype);
    this.maxNewTokens = maxNewTokens;
    this.stop = [...stop];
    this.seed = seed;
    this.stopAtEos = stopAtEos;
    this.signal = signal;
    const V = model.config.vocabSize;
    this.seqs = prompts.map((p, i) => {
      let ids: number[];
      if (typeof p === 'string') ids = tokenizer.encode(p);
      else if (Array.isArray(p)) ids = [...p];
      else throw new Error(`${fn}: prompt ${i} must be a string or an array of token ids`);
      for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`${fn}: prompt ${i} has token id ${id} outside the model's vocabulary (${V})`);
      if (ids.length === 0) ids = [tokenizer.eosId];
      return { prompt: ids, tokens: [], seen: new Set(ids), decoder: new TextDecoder('utf-8'), pending: '', text: '', finish: null };
    });
  }

  /** Runs one step; returns the text chunks it produced. */
  step(): GenerationChunk[] {
    if (this.finished) return [];
    const chunks: GenerationChunk[] = [];
    if (this.signal?.aborted) {
      this.abort(chunks);
      return chunks;
    }
    const model = this.model;
    const V = model.config.vocabSize;
    const B = this.seqs.length;
    if (this.cache === null) {
      if (this.maxNewTokens === 0) {
        this.finishAll('length', chunks);
        return chunks;
      }
      this.cache = model.createCache(B, undefined, { kvDtype: this.kvDtype });
      this.logits = model.forwardCached(this.seqs.map((s) => s.prompt), this.cache); // prefill
    }
    // Draw one token per unfinished sequence from the last logits.
    const next: number[][] = [];
    for (let i = 0; i < B; i++) {
      const s = this.seqs[i];
      if (s.finish !== null) {
        next.push([]);
        continue;
      }
      const row = this.logits!.slice(i * V, (i + 1) * V);
      applyRepetitionPenalty(row, s.seen, this.sampling.repetitionPenalty);
      const dist = samplingDistribution(row, this.sampling);
      const id = dist.ids.length === 1 ? dist.ids[0] : drawToken(dist, uniformDraw(this.seed, i, this.stepNo));
      if (this.stopAtEos && id === this.tokenizer.eosId) {
        this.end(i, 'eos', chunks);
        next.push([]);
        continue;
      }
      s.tokens.push(id);
      s.seen.add(id);
      this.push(i, s.decoder.decode(this.tokenizer.decodeBytes([id]), { stream: true }), chunks);
      if (s.finish === null && s.tokens.length >= this.maxNewTokens) this.end(i, 'length', chunks);
      next.push(s.finish === null ? [id] : []);
    }
    this.stepNo++;
    if (this.seqs.every((s) => s.finish !== null)) {
      this.close();
      return chunks;
    }
    this.logits = model.forwardCached(next, this.cache);
    return chunks;
  }

  /** Ends every unfinished sequence as aborted. */
  abort(chunks: GenerationChunk[] = []): void {
    this.finishAll('aborted', chunks);
  }

  results(): GenerationResult[] {
    return this.seqs.map((s) => ({ text: s.text, tokens: s.tokens, promptTokens: s.prompt, finishReason: s.finish ?? 'aborted' }));
  }

  dispose(): void {
    this.cache?.dispose();
    this.cache = null;
    this.finished = true;
  }

  private finishAll(reason: FinishReason, chunks: GenerationChunk[]): void {
    for (let i = 0; i < this.seqs.length; i++) if (this.seqs[i].finish === null) this.end(i, reason, chunks);
    this.close();
  }

  private close(): void {
    this.dispose();
  }

  /** Adds decoded text to sequence i: emits what cannot be part of a stop string, stops at one. */
  private push(i: number, piece: string, chunks: GenerationChunk[]): void {
    const s = this.seqs[i];
    s.pending += piece;
    let cut = -1;
    for (const st of this.stop) {
      const at = s.pending.indexOf(st);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.emit(i, s.pending.slice(0, cut), chunks);
      s.pending = '';
      s.finish = 'stop';
      return;
    }
    // Hold back the longest tail of pending that begins some stop string.
    let hold = 0;
    for (const st of this.stop) {
      for (let n = Math.min(st.length - 1, s.pending.length); n > hold; n--) {
        if (s.pending.endsWith(st.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    this.emit(i, s.pending.slice(0, s.pending.length - hold), chunks);
    s.pending = s.pending.slice(s.pending.length - hold);
  }

  /** Finishes sequence i: flushes the decoder and the held-back text (no stop string in it). */
  private end(i: number, reason: FinishReason, chunks: GenerationChunk[]): void {
    const s = this.seqs[i];
    if (s.finish !== null) return;
    this.push(i, s.decoder.decode(), chunks); // an incomplete character becomes U+FFFD
    if (s.finish !== null) return; // the flush completed a stop string
    this.emit(i, s.pending, chunks);
    s.pending = '';
    s.finish = reason;
  }

  private emit(i: number, text: string, chunks: GenerationChunk[]): void {
    if (text === '') return;
    this.seqs[i].text += text;
    chunks.push({ index: i, text });
  }
}
