// KV-cached decoding: the KV cache of a GPT (the keys and values of every layer for a batch
// of sequences), so that generation encodes the prompt once and then pays one step of
// attention per token, and the Decoder that runs the model's blocks over it
// (GPT.createCache and GPT.forwardCached delegate to it).
//
//   const cache = model.createCache(batch, maxT);           // maxT <= blockSize
//   let logits = model.forwardCached([promptA, promptB], cache); // (B, V): last position each
//   logits = model.forwardCached([[nextA], [nextB]], cache);     // one decode step
//
// Layout: per layer, k and v are (B, NH, maxT, HS) views of two backend tensors; pos (B,
// i32) holds each sequence's length. The cache holds f32 (the default) or bf16
// (`createCache(batch, maxT, { kvDtype: 'bf16' })`): half the memory (GPT-2 small at 1024
// positions: 75 MB a sequence in f32) and half the bytes attention reads per token. The
// k, v rows are rounded to bf16 as they are appended (attentionDecodeBf16), and attention
// computes in f32 over them widened. Sequences are left-aligned (token i of sequence b is
// cache row i and has position i), so sequences of different lengths decode together, each
// at its own position (see attentionDecode in src/backend/backend.ts).
//
// The sliding rule (positions are learned, so they must stay < blockSize): when a sequence's
// new tokens do not fit (length + new > maxT), its cache is dropped and rebuilt from its
// most recent tokens: it keeps the last floor(maxT / 2) tokens it had (fewer if the new
// tokens need the room; none if the new tokens alone fill the cache, of which the last maxT
// are kept), and those are re-encoded at positions 0.. together with the new tokens. So
// every token sees at least the previous floor(maxT / 2) tokens, and re-encoding costs about
// one extra token per generated token, amortised (nanoGPT instead crops to the last
// blockSize tokens and recomputes everything for every token).

import type { Backend, Tensor } from '../backend/backend.js';
import { ActivationPlan } from './activations.js';
import { NO_DROP, type Blocks } from './blocks.js';
import type { LoraShape } from './lora.js';
import { checkTokens } from '../backend/base.js';
import { embedForward, linearForward } from './weights.js';

/** The element types a KV cache can hold: 'f32' (default) or 'bf16'. */
export const KV_DTYPES = ['f32', 'bf16'] as const;
export type KVDType = (typeof KV_DTYPES)[number];

/** The option that picks it: createCache's, and that of generate, score, zeroShot and fewShot. */
export interface KVCacheOptions {
  /** The KV cache's element type: 'f32' (default) or 'bf16' (half the memory; k and v rounded to bf16). */
  kvDtype?: KVDType;
}

/** `kvDtype` checked: 'f32' when missing, else 'f32' or 'bf16'; `fn` names the caller in the error. */
export function resolveKvDtype(fn: string, kvDtype: unknown): KVDType {
  if (kvDtype === undefined) return 'f32';
  if (kvDtype !== 'f32' && kvDtype !== 'bf16') throw new Error(`${fn}: kvDtype must be 'f32' or 'bf16', got ${typeof kvDtype === 'string' ? `'${kvDtype}'` : String(kvDtype)}`);
  return kvDtype;
}

export class KVCache {
  /** Sequences in the batch (B). */
  readonly batch: number;
  /** Cache rows per sequence (maxT <= the model's blockSize). */
  readonly maxT: number;
  /** Per layer: keys (B, NH, maxT, HS). */
  readonly k: readonly Tensor[];
  /** Per layer: values (B, NH, maxT, HS). */
  readonly v: readonly Tensor[];
  /** Each sequence's length (B), i32, on the backend (what attentionDecode reads). */
  readonly pos: Tensor;

  private readonly kBase: Tensor; // (L, B, NH, maxT, HS)
  private readonly vBase: Tensor;
  private readonly lens: Int32Array; // (B) mirror of pos
  private readonly toks: number[][]; // the token ids in the cache, per sequence
  private disposed = false;

  /** @internal Use GPT.createCache. */
  constructor(readonly backend: Backend, readonly nLayer: number, readonly nEmbd: number, batch: number, maxT: number, readonly dtype: KVDType = 'f32') {
    this.batch = batch;
    this.maxT = maxT;
    const per = batch * maxT * nEmbd; // one layer's (B, NH, maxT, HS)
    this.kBase = backend.alloc(nLayer * per, dtype);
    this.vBase = backend.alloc(nLayer * per, dtype);
    const k: Tensor[] = [];
    const v: Tensor[] = [];
    for (let l = 0; l < nLayer; l++) {
      k.push(backend.view(this.kBase, l * per, per));
      v.push(backend.view(this.vBase, l * per, per));
    }
    this.k = k;
    this.v = v;
    this.pos = backend.alloc(batch, 'i32');
    this.lens = new Int32Array(batch);
    this.toks = Array.from({ length: batch }, () => []);
  }

  /** The length of sequence b (tokens in its cache). */
  length(b: number): number {
    this.checkSeq('length', b);
    return this.lens[b];
  }

  /** The lengths of all sequences (a copy). */
  lengths(): number[] {
    return Array.from(this.lens);
  }

  /** The token ids in sequence b's cache, oldest first (a copy). */
  tokens(b: number): number[] {
    this.checkSeq('tokens', b);
    return [...this.toks[b]];
  }

  /** Empties sequence b (or every sequence). Its rows are not cleared: nothing reads past a length. */
  reset(b?: number): void {
    this.alive();
    if (b === undefined) {
      this.lens.fill(0);
      for (const t of this.toks) t.length = 0;
    } else {
      this.checkSeq('reset', b);
      this.lens[b] = 0;
      this.toks[b] = [];
    }
    this.syncPos();
  }

  /**
   * Copies sequence `from` of `src` (a cache of the same model, maxT and dtype) into sequence `to`
   * of this cache: the way to fork a shared prefix (score() encodes a context once and
   * copies it to one slot per candidate). Copies the sequence's whole block per layer.
   */
  copySequence(src: KVCache, from: number, to: number): void {
    this.alive();
    src.alive();
    if (src.backend !== this.backend || src.nLayer !== this.nLayer || src.nEmbd !== this.nEmbd || src.maxT !== this.maxT) {
      throw new Error('KVCache.copySequence: the caches must belong to the same model and have the same maxT');
    }
    if (src.dtype !== this.dtype) throw new Error(`KVCache.copySequence: the caches must have the same kvDtype (${src.dtype} into ${this.dtype})`);
    src.checkSeq('copySequence', from);
    this.checkSeq('copySequence', to);
    if (src === this && from === to) return;
    const len = src.lens[from];
    const be = this.backend;
    const C = this.nEmbd;
    const block = this.maxT * C; // one sequence's (NH, maxT, HS) block: maxT rows of C
    for (let l = 0; l < this.nLayer; l++) {
      for (const [dst, s] of [[this.k[l], src.k[l]], [this.v[l], src.v[l]]] as const) {
        const out = be.view(dst, to * block, block);
        const inp = be.view(s, from * block, block);
        // On the backend: nothing crosses into JS.
        if (this.dtype === 'bf16') be.copyRowsBf16(out, inp, this.maxT, C);
        else be.copyRows(out, inp, this.maxT, C);
        be.free(out);
        be.free(inp);
      }
    }
    this.lens[to] = len;
    this.toks[to] = [...src.toks[from]];
    this.syncPos();
  }

  /** Frees the backend tensors; the cache cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [...this.k, ...this.v]) this.backend.free(t);
    for (const t of [this.kBase, this.vBase, this.pos]) this.backend.free(t);
  }

  // ---- used by the Decoder ----

  /** @internal The token ids of sequence b, not copied (read only). */
  tokensView(b: number): readonly number[] {
    return this.toks[b];
  }

  /** @internal Records that `ids` were appended to sequence b. */
  appended(b: number, ids: ArrayLike<number>): void {
    for (let i = 0; i < ids.length; i++) this.toks[b].push(ids[i]);
    this.lens[b] += ids.length;
  }

  /** @internal Writes the lengths to the backend's pos tensor. */
  syncPos(): void {
    this.backend.write(this.pos, this.lens);
  }

  /** @internal */
  alive(): void {
    if (this.disposed) throw new Error('KVCache: the cache has been disposed');
  }

  private checkSeq(fn: string, b: number): void {
    this.alive();
    if (!Number.isInteger(b) || b < 0 || b >= this.batch) throw new Error(`KVCache.${fn}: sequence ${b} is out of range (batch ${this.batch})`);
  }
}

/**
 * The sliding rule (see the header): what sequence b must feed when `cached` tokens are in
 * its cache and `fresh` arrive, for a cache of maxT rows. Returns null when they fit as they
 * are, else the tokens to re-encode from an empty cache (a tail of cached + fresh).
 */
export function slideWindow(cached: readonly number[], fresh: ArrayLike<number>, maxT: number): number[] | null {
  if (cached.length + fresh.length <= maxT) return null;
  const all = [...cached, ...Array.from(fresh)];
  if (fresh.length >= maxT) return all.slice(all.length - maxT);
  const keep = Math.min(cached.length, Math.floor(maxT / 2), maxT - fresh.length);
  return all.slice(cached.length - keep);
}

/**
 * The KV-cached forward pass of a model, with its own activation workspace: planned per
 * (B, Tq) apart from the full passes' (ActivationPlan), so that decoding between a model's
 * trainForward and backward leaves that training pass intact. Its errors name the GPT
 * methods that delegate here.
 */
export class Decoder {
  private readonly plan: ActivationPlan;

  constructor(private readonly blocks: Blocks) {
    this.plan = new ActivationPlan(blocks.backend, blocks.config);
  }

  /** Plans an attached adapter's branch buffers (GPT.attachAdapter); the blocks run the branches. */
  setLora(shape: LoraShape | null): void {
    this.plan.setLora(shape);
  }

  /** GPT.createCache: a cache for `batch` sequences of up to `maxT` tokens, of `options.kvDtype`. */
  createCache(batch: number, maxT: number, options: KVCacheOptions = {}): KVCache {
    const { blockSize, nLayer, nEmbd } = this.blocks.config;
    if (options === null || typeof options !== 'object') throw new Error(`createCache: options must be an object, got ${String(options)}`);
    const dtype = resolveKvDtype('createCache', options.kvDtype);
    if (!Number.isSafeInteger(batch) || batch < 1) throw new Error(`createCache: batch must be a positive integer, got ${String(batch)}`);
    if (!Number.isSafeInteger(maxT) || maxT < 1 || maxT > blockSize) {
      throw new Error(`createCache: maxT must be an integer in 1..blockSize (${blockSize}), got ${String(maxT)}`);
    }
    return new KVCache(this.blocks.backend, nLayer, nEmbd, batch, maxT, dtype);
  }

  /** GPT.forwardCached (see there): runs each sequence's new tokens over the cache, appends them. */
  forward(tokens: ReadonlyArray<ArrayLike<number>>, cache: KVCache, options: { logits?: 'last' | 'all' }): Float32Array {
    const { config, backend: be, p } = this.blocks;
    const { nEmbd: C, nHead: NH, vocabSize: V, nLayer: L } = config;
    const mode = options.logits ?? 'last';
    if (mode !== 'last' && mode !== 'all') throw new Error(`forwardCached: logits must be 'last' or 'all', got ${String(mode)}`);
    if (!(cache instanceof KVCache) || cache.backend !== be || cache.nLayer !== L || cache.nEmbd !== C) {
      throw new Error('forwardCached: cache must come from this model\'s createCache');
    }
    cache.alive();
    const B = cache.batch;
    const maxT = cache.maxT;
    if (!Array.isArray(tokens as unknown) || tokens.length !== B) throw new Error(`forwardCached: tokens must be an array of ${B} token lists (one per sequence in the cache)`);
    const counts = tokens.map((t, b) => {
      if (t === null || typeof t !== 'object' || typeof t.length !== 'number') throw new Error(`forwardCached: tokens[${b}] must be an array of token ids`);
      checkTokens('forwardCached', `tokens[${b}]`, t, V);
      return t.length;
    });
    const Tn = Math.max(0, ...counts);
    // What each sequence feeds: its new tokens, or (sliding) a re-encoded tail plus them.
    const feed: number[][] = tokens.map((t, b) => {
      const slid = slideWindow(cache.tokensView(b), t, maxT);
      if (slid === null) return Array.from(t);
      cache.reset(b);
      return slid;
    });
    const Tq = Math.max(0, ...feed.map((f) => f.length));
    const out = new Float32Array(mode === 'last' ? B * V : B * Tn * V);
    if (Tq === 0) return out;

    const { acts: a, ids: idsT } = this.plan.forward(B, Tq);
    const ids = new Int32Array(B * Tq); // right-padded with 0
    feed.forEach((f, b) => ids.set(f, b * Tq));
    be.write(idsT, ids);
    cache.syncPos();
    // Embeddings at each sequence's own positions: wte[id] + wpe[len_b + t].
    const views: Tensor[] = [];
    const view = (t: Tensor, offset: number, length: number): Tensor => {
      const v = be.view(t, offset, length);
      views.push(v);
      return v;
    };
    try {
      feed.forEach((f, b) => {
        const n = f.length;
        if (n === 0) return;
        const start = cache.length(b);
        embedForward(be, view(a.encoded, b * Tq * C, n * C), view(idsT, b * Tq, n), p.wte,
          view(p.wpe, start * C, (config.blockSize - start) * C), 1, n, C);
      });
      const hidden = this.blocks.forward(a, B * Tq, NO_DROP, (la, l) => {
        if (cache.dtype === 'bf16') be.attentionDecodeBf16(la.atty, cache.k[l], cache.v[l], la.qkv, cache.pos, B, Tq, C, NH, maxT); // (B, Tq, C)
        else be.attentionDecode(la.atty, cache.k[l], cache.v[l], la.qkv, cache.pos, B, Tq, C, NH, maxT); // (B, Tq, C)
      }); // (B, Tq, C)
      feed.forEach((f, b) => cache.appended(b, f));
      cache.syncPos();
      if (mode === 'all' || Tq === 1) {
        const rows = B * Tq;
        const logits = view(a.logits, 0, rows * V);
        linearForward(be, logits, hidden, p.wte, null, rows, C, V); // (B, Tq, V)
        const all = be.read(logits) as Float32Array;
        feed.forEach((f, b) => {
          const n = counts[b];
          if (n === 0) return;
          // The caller's token t is feed row f.length - n + t.
          const from = (b * Tq + f.length - n) * V;
          if (mode === 'all') out.set(all.subarray(from, from + n * V), b * Tn * V);
          else out.set(all.subarray(from + (n - 1) * V, from + n * V), b * V);
        });
      } else {
        feed.forEach((f, b) => {
          if (counts[b] === 0) return;
          const row = view(a.logits, b * V, V);
          linearForward(be, row, view(hidden, (b * Tq + f.length - 1) * C, C), p.wte, null, 1, C, V); // (V)
          out.set(be.read(row) as Float32Array, b * V);
        });
      }
    } finally {
      for (const v of views) be.free(v);
    }
    return out;
  }

  dispose(): void {
    this.plan.dispose();
  }
}
