// Training data: text files → a binary token file → batches of random windows.
//
//   prepareData('corpus/', { tokenizer, out: 'out/tokens.bin' })
//     writes  out/tokens.bin        the token ids, back to back, little-endian uint16
//                                   (uint32 when the vocabulary has more than 65535 ids);
//                                   nanoGPT's train.bin, with train and val in one file
//             out/tokens.bin.json   what the ids are: vocab size, dtype, count, and a hash
//                                   of the source files + tokenizer (see TokenFileMeta)
//   TokenDataset.open('out/tokens.bin')   the last valFraction (default 10%) of the
//                                         tokens is the validation split, the rest is train
//   new WindowSampler(dataset, { batchSize, blockSize, seed })
//     .next()  → { ids, targets }: batchSize random windows of blockSize + 1 tokens
//
// Why a token file: tokenizing is slow (pure TS BPE) and a corpus can be many GB. The file
// is built once, streamed: the text is read in chunks (chunkBytes, 1 MiB by default), each
// chunk is cut at a point where the tokenizer's pre-tokenizer would split anyway (see
// lastSafeSplit), encoded and appended, so neither the text nor the ids of a big corpus
// ever sit in the JS heap. It is rebuilt only when its source files or tokenizer change.
//
// Why positioned reads: Node cannot memory-map a file without a native module, and a
// window is a few KB, so one fs.readSync per window at its byte offset costs nothing next
// to a forward pass. Windows are drawn with the counter RNG of rng.ts; the sampler's state
// is { seed, drawn } and is stored in checkpoints, so a resumed run reads the same windows.

import { createHash } from 'node:crypto';
import { createReadStream, closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { uniformInt } from '../backend/rng.js';

export type TokenDType = 'uint16' | 'uint32';

/** The JSON file next to a token file (`<token file>.json`). */
export interface TokenFileMeta {
  format: 'ferrogpt-tokens';
  version: 1;
  dtype: TokenDType;
  /** Vocabulary size of the tokenizer that wrote the ids (every id is below it). */
  vocabSize: number;
  /** Number of tokens in the file. */
  count: number;
  /** Id written between two source files (the tokenizer's <|endoftext|>). */
  eosId: number;
  /** sha256 of the tokenizer.json and of every source file (name, size, bytes): the file is
   * rebuilt when this changes. */
  sourceHash: string;
  /** The source files, relative to the input path, in the order they were written. */
  files: Array<{ path: string; bytes: number }>;
}

export interface PrepareDataOptions {
  tokenizer: Tokenizer;
  /** Path of the token file to write; its metadata goes to `${out}.json`. */
  out: string;
  /** Bytes of text read (and encoded) at a time. Default 1 MiB. */
  chunkBytes?: number;
  /** Rebuild even if the existing file matches its sources. */
  force?: boolean;
}

export interface PreparedData {
  path: string;
  meta: TokenFileMeta;
  /** false when an up-to-date token file was already there. */
  rebuilt: boolean;
}

const FORMAT = 'ferrogpt-tokens';
const DEFAULT_CHUNK_BYTES = 1 << 20;

/** Bytes per token of a dtype. */
export function bytesPerToken(dtype: TokenDType): number {
  return dtype === 'uint16' ? 2 : 4;
}

/** The smallest dtype that holds every id of a vocabulary of `vocabSize`. */
export function dtypeForVocab(vocabSize: number): TokenDType {
  return vocabSize <= 65535 ? 'uint16' : 'uint32';
}

/**
 * The text files under `input`: a file, a directory (its .txt files, recursively, sorted
 * by path so the token file does not depend on directory order), or a list of either.
 */
export async function listTextFiles(input: string | readonly string[]): Promise<Array<{ path: string; name: string }>> {
  const inputs = typeof input === 'string' ? [input] : [...input];
  if (inputs.length === 0) throw new Error('prepareData: no input files');
  const out: Array<{ path: string; name: string }> = [];
  for (const root of inputs) {
    const st = await stat(root).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`prepareData: cannot read ${root}: ${err.message}`, { cause: err });
    });
    if (st.isFile()) {
      out.push({ path: resolve(root), name: root });
      continue;
    }
    const found: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, entry.name);
        if (entry.isDirectory()) await walk(p);
        else if (entry.isFile() && entry.name.endsWith('.txt')) found.push(p);
      }
    };
    await walk(root);
    found.sort(); // code-unit order: the same on every platform and locale
    if (found.length === 0) throw new Error(`prepareData: ${root} holds no .txt files`);
    for (const p of found) out.push({ path: resolve(p), name: relative(root, p).split('\\').join('/') });
  }
  return out;
}

/**
 * Tokenizes text files into a token file (see the top of this file). Files are separated by
 * the tokenizer's end-of-text id, as GPT-2's documents are. If `${out}.json` already
 * describes the same sources and tokenizer (and the token file has the right size), nothing
 * is rebuilt. Both files are written atomically (the token file first), so an interrupted
 * run leaves either the old pair or a pair whose hash mismatches, which is rebuilt.
 */
export async function prepareData(input: string | readonly string[], options: PrepareDataOptions): Promise<PreparedData> {
  const { tokenizer, out, force = false } = options;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new Error(`prepareData: chunkBytes must be a positive integer, got ${chunkBytes}`);
  if (endianness() !== 'LE') throw new Error('prepareData: token files are little-endian; big-endian hosts are not supported');
  const files = await listTextFiles(input);
  const dtype = dtypeForVocab(tokenizer.vocabSize);
  const sourceHash = await hashSources(files, tokenizer, dtype);

  const metaPath = `${out}.json`;
  if (!force) {
    const existing = await readMeta(metaPath).catch(() => null);
    if (existing !== null && existing.sourceHash === sourceHash) {
      const size = await stat(out).then((s) => s.size, () => -1);
      if (size === existing.count * bytesPerToken(existing.dtype)) return { path: out, meta: existing, rebuilt: false };
    }
  }

  await mkdir(dirname(resolve(out)), { recursive: true });
  const filesMeta: TokenFileMeta['files'] = [];
  let count = 0;
  await writeFileAtomic(out, async (fh) => {
    const writeIds = async (ids: number[]): Promise<void> => {
      if (ids.length === 0) return;
      const arr = dtype === 'uint16' ? Uint16Array.from(ids) : Uint32Array.from(ids);
      await fh.write(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
      count += ids.length;
    };
    for (let i = 0; i < files.length; i++) {
      if (i > 0) await writeIds([tokenizer.eosId]);
      let bytes = 0;
      for await (const piece of encodeFileChunks(files[i].path, tokenizer, chunkBytes, (n) => (bytes += n))) await writeIds(piece);
      filesMeta.push({ path: files[i].name, bytes });
    }
  });
  const meta: TokenFileMeta = { format: FORMAT, version: 1, dtype, vocabSize: tokenizer.vocabSize, count, eosId: tokenizer.eosId, sourceHash, files: filesMeta };
  await writeFileAtomic(metaPath, JSON.stringify(meta, null, 2) + '\n');
  return { path: out, meta, rebuilt: true };
}

/**
 * Encodes one UTF-8 file chunk by chunk, yielding the ids of each piece. The pieces
 * concatenated equal tokenizer.encode(the whole file) exactly (tested), because each cut
 * is at a point the tokenizer splits at anyway (lastSafeSplit). `onBytes` counts the bytes
 * read.
 */
export async function* encodeFileChunks(path: string, tokenizer: Tokenizer, chunkBytes = DEFAULT_CHUNK_BYTES, onBytes?: (n: number) => void): AsyncGenerator<number[]> {
  // ignoreBOM keeps a leading U+FEFF, as readFile(path, 'utf8') does, so the stream decodes
  // to exactly the string a whole-file read would give (invalid bytes → U+FFFD in both).
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const specials = [...tokenizer.specialTokens.keys()];
  // Without the GPT-2 regex a byte-level tokenizer treats its whole input as one word, so
  // no cut is safe: such a file is encoded whole.
  const pre = (tokenizer.toJSON() as { pre_tokenizer?: { use_regex?: boolean } | null }).pre_tokenizer;
  const splittable = !(tokenizer.type === 'bpe' && pre?.use_regex === false);
  // A chunk without any safe cut keeps growing up to this, then is cut anyway (see below).
  const maxPending = 64 * chunkBytes;
  let pending = '';
  for await (const chunk of createReadStream(path, { highWaterMark: chunkBytes })) {
    const buf = chunk as Buffer;
    onBytes?.(buf.length);
    pending += decoder.decode(buf, { stream: true });
    if (!splittable) continue;
    let cut = lastSafeSplit(pending, specials);
    if (cut <= 0 && pending.length > maxPending) {
      // Text with no space between two non-space characters for 64 chunks (e.g. CJK
      // without spaces). Cut at a code-point boundary; this is the one case where the ids
      // may differ from encoding the file whole (a pre-token can be split in two).
      cut = pending.length - 1;
      if (isHighSurrogate(pending.charCodeAt(cut - 1))) cut--;
    }
    if (cut > 0) {
      yield tokenizer.encode(pending.slice(0, cut));
      pending = pending.slice(cut);
    }
  }
  pending += decoder.decode();
  if (pending !== '') yield tokenizer.encode(pending);
}

const NON_SPACE = /\S/;

/**
 * The last index p where `text` can be cut into text[..p] and text[p..] without changing its
 * encoding, or -1. p is a space with a non-whitespace character on each side, and not
 * inside a special token. Why that is safe for the GPT-2 pre-tokenizer
 * ('s|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+): every alternative that
 * matches the non-space text[p-1] stops before a space, so a pre-token ends at p in both
 * the whole and the cut text; and the one starting at p is " " + a letter/number/symbol run
 * in both (text[p+1] is not whitespace, so neither \s alternative applies). A piece that
 * starts with a space also gets no extra add_prefix_space. Char tokenizers cut anywhere.
 */
export function lastSafeSplit(text: string, specials: readonly string[] = []): number {
  let p = text.lastIndexOf(' ', text.length - 2);
  while (p > 0) {
    if (NON_SPACE.test(text[p - 1]) && NON_SPACE.test(text[p + 1]) && !insideSpecial(text, p, specials)) return p;
    p = text.lastIndexOf(' ', p - 1);
  }
  return -1;
}

/** Whether an occurrence of a special token covers both text[p-1] and text[p]. */
function insideSpecial(text: string, p: number, specials: readonly string[]): boolean {
  for (const s of specials) {
    if (s.length < 2) continue;
    let i = text.indexOf(s, Math.max(0, p - s.length + 1));
    while (i !== -1 && i < p) {
      if (i + s.length > p) return true;
      i = text.indexOf(s, i + 1);
    }
  }
  return false;
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

async function hashSources(files: Array<{ path: string; name: string }>, tokenizer: Tokenizer, dtype: TokenDType): Promise<string> {
  const h = createHash('sha256');
  h.update(`${FORMAT} v1 ${dtype} eos-separated\0`);
  h.update(JSON.stringify(tokenizer.toJSON()));
  for (const f of files) {
    h.update(`\0${f.name}\0`);
    for await (const chunk of createReadStream(f.path)) h.update(chunk as Buffer);
  }
  return `sha256:${h.digest('hex')}`;
}

async function readMeta(path: string): Promise<TokenFileMeta> {
  return checkMeta(JSON.parse(await readFile(path, 'utf8')), path);
}

function checkMeta(m: unknown, path: string): TokenFileMeta {
  const meta = m as Partial<TokenFileMeta> | null;
  const bad = (what: string): never => {
    throw new Error(`${path}: not a ferrogpt token file description (${what}); rebuild it with prepareData`);
  };
  if (meta === null || typeof meta !== 'object') bad('not a JSON object');
  if (meta!.format !== FORMAT) bad(`format ${JSON.stringify(meta!.format)}`);
  if (meta!.version !== 1) bad(`version ${String(meta!.version)}`);
  if (meta!.dtype !== 'uint16' && meta!.dtype !== 'uint32') bad(`dtype ${String(meta!.dtype)}`);
  for (const k of ['vocabSize', 'count', 'eosId'] as const) {
    if (!Number.isSafeInteger(meta![k]) || (meta![k] as number) < 0) bad(`${k} ${String(meta![k])}`);
  }
  return meta as TokenFileMeta;
}

// ---------------------------------------------------------------- reading

/** Where the tokens of a dataset live: a token file (positioned reads) or an array. */
interface TokenSource {
  /** Copies tokens [start, start + out.length) into out. */
  read(start: number, out: Int32Array): void;
  close(): void;
}

class FileSource implements TokenSource {
  private fd: number | null;
  private buf = new Uint8Array(0);
  constructor(private readonly path: string, private readonly dtype: TokenDType) {
    this.fd = openSync(path, 'r');
  }
  get size(): number {
    return fstatSync(this.fd!).size;
  }
  read(start: number, out: Int32Array): void {
    if (this.fd === null) throw new Error(`TokenDataset: ${this.path} is closed`);
    const bpt = bytesPerToken(this.dtype);
    const nbytes = out.length * bpt;
    if (this.buf.length < nbytes) this.buf = new Uint8Array(nbytes);
    let done = 0;
    while (done < nbytes) {
      const n = readSync(this.fd, this.buf, done, nbytes - done, start * bpt + done);
      if (n === 0) throw new Error(`TokenDataset: ${this.path} ended early (truncated?) reading tokens at ${start}`);
      done += n;
    }
    const ids = this.dtype === 'uint16' ? new Uint16Array(this.buf.buffer, 0, out.length) : new Uint32Array(this.buf.buffer, 0, out.length);
    out.set(ids);
  }
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

class ArraySource implements TokenSource {
  constructor(private readonly tokens: ArrayLike<number>) {}
  read(start: number, out: Int32Array): void {
    for (let i = 0; i < out.length; i++) out[i] = this.tokens[start + i];
  }
  close(): void {}
}

export interface DatasetOptions {
  /** Fraction of the tokens, taken from the END of the file, held out for validation.
   * Default 0.1 (as nanoGPT's prepare scripts); 0 means no validation split. */
  valFraction?: number;
}

/**
 * A token file (or array) split into train = tokens [0, trainTokens) and
 * val = [trainTokens, count). Windows never cross the boundary.
 */
export class TokenDataset {
  readonly vocabSize: number;
  readonly count: number;
  readonly trainTokens: number;
  readonly valTokens: number;
  readonly valFraction: number;
  /** The token file's description (null for an in-memory dataset). */
  readonly meta: TokenFileMeta | null;
  /** Identifies the data for checkpoints: the source hash, or a hash of the array. */
  readonly id: string;

  private constructor(private readonly source: TokenSource, vocabSize: number, count: number, valFraction: number, meta: TokenFileMeta | null, id: string) {
    if (typeof valFraction !== 'number' || !(valFraction >= 0 && valFraction < 1)) {
      throw new Error(`TokenDataset: valFraction must be in [0, 1), got ${String(valFraction)}`);
    }
    this.vocabSize = vocabSize;
    this.count = count;
    this.valFraction = valFraction;
    this.valTokens = Math.floor(count * valFraction);
    this.trainTokens = count - this.valTokens;
    this.meta = meta;
    this.id = id;
  }

  /** Opens a token file written by prepareData (reads `${path}.json` for its description). */
  static open(path: string, options: DatasetOptions = {}): TokenDataset {
    const metaPath = `${path}.json`;
    let meta: TokenFileMeta;
    try {
      meta = checkMeta(JSON.parse(readFileSyncUtf8(metaPath)), metaPath);
    } catch (err) {
      throw new Error(`TokenDataset.open: cannot read ${metaPath}: ${(err as Error).message}`, { cause: err });
    }
    const source = new FileSource(path, meta.dtype);
    const expected = meta.count * bytesPerToken(meta.dtype);
    const size = source.size;
    if (size !== expected) {
      source.close();
      throw new Error(`TokenDataset.open: ${path} has ${size} bytes, its description says ${meta.count} ${meta.dtype} tokens (${expected} bytes); rebuild it with prepareData`);
    }
    return new TokenDataset(source, meta.vocabSize, meta.count, options.valFraction ?? 0.1, meta, meta.sourceHash);
  }

  /** An in-memory dataset (tests, browsers, small corpora). */
  static fromTokens(tokens: ArrayLike<number>, options: DatasetOptions & { vocabSize: number }): TokenDataset {
    const { vocabSize } = options;
    if (!Number.isSafeInteger(vocabSize) || vocabSize < 1) throw new Error(`TokenDataset.fromTokens: vocabSize must be a positive integer, got ${vocabSize}`);
    const h = createHash('sha256');
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new Error(`TokenDataset.fromTokens: tokens[${i}] = ${t} is out of range (vocabSize ${vocabSize})`);
    }
    h.update(new Uint8Array(Int32Array.from(tokens).buffer));
    return new TokenDataset(new ArraySource(tokens), vocabSize, tokens.length, options.valFraction ?? 0.1, null, `sha256:${h.digest('hex')}`);
  }

  /** Tokens [start, start + length) as an Int32Array. */
  read(start: number, length: number): Int32Array {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0 || start + length > this.count) {
      throw new Error(`TokenDataset.read: [${start}, ${start + length}) is outside the ${this.count} tokens`);
    }
    const out = new Int32Array(length);
    this.source.read(start, out);
    return out;
  }

  /** Tokens [start, start + out.length) into `out` (no allocation). */
  readInto(start: number, out: Int32Array): void {
    if (!Number.isSafeInteger(start) || start < 0 || start + out.length > this.count) {
      throw new Error(`TokenDataset.readInto: [${start}, ${start + out.length}) is outside the ${this.count} tokens`);
    }
    this.source.read(start, out);
  }

  /** Token range [begin, end) of a split. */
  range(split: 'train' | 'val'): [number, number] {
    return split === 'train' ? [0, this.trainTokens] : [this.trainTokens, this.count];
  }

  close(): void {
    this.source.close();
  }
}

function readFileSyncUtf8(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, buf, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf.toString('utf8', 0, done);
  } finally {
    closeSync(fd);
  }
}

/** A batch: inputs and next-token targets, each (B, T) row-major. */
export interface Batch {
  ids: Int32Array;
  targets: Int32Array;
}

/** The sampler's whole state (JSON): draw k of the counter RNG picks window k. */
export interface SamplerState {
  seed: number;
  /** Windows drawn so far. */
  drawn: number;
}

/**
 * Random training windows. Window k starts at uniformInt(seed, k, trainTokens - blockSize)
 * and holds blockSize + 1 tokens: ids = its first blockSize, targets = its last blockSize.
 * Windows overlap and repeat (sampling with replacement, as nanoGPT's get_batch).
 */
export class WindowSampler {
  readonly batchSize: number;
  readonly blockSize: number;
  private seed: number;
  private drawn = 0;
  private readonly begin: number;
  private readonly starts: number; // number of possible window starts

  constructor(private readonly dataset: TokenDataset, options: { batchSize: number; blockSize: number; seed: number; split?: 'train' | 'val' }) {
    const { batchSize, blockSize, seed, split = 'train' } = options;
    checkPositive('batchSize', batchSize);
    checkPositive('blockSize', blockSize);
    checkSeed(seed);
    const [begin, end] = dataset.range(split);
    if (end - begin < blockSize + 1) {
      throw new Error(`WindowSampler: the ${split} split has ${end - begin} tokens, fewer than blockSize + 1 = ${blockSize + 1}; use more data or a smaller blockSize`);
    }
    this.batchSize = batchSize;
    this.blockSize = blockSize;
    this.seed = seed >>> 0;
    this.begin = begin;
    this.starts = end - begin - blockSize;
  }

  /** The next batch of batchSize windows. */
  next(): Batch {
    const B = this.batchSize;
    const T = this.blockSize;
    const window = new Int32Array(T + 1);
    const ids = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = this.begin + uniformInt(this.seed, this.drawn++, this.starts);
      this.dataset.readInto(start, window);
      ids.set(window.subarray(0, T), b * T);
      targets.set(window.subarray(1), b * T);
    }
    return { ids, targets };
  }

  state(): SamplerState {
    return { seed: this.seed, drawn: this.drawn };
  }

  loadState(state: SamplerState): void {
    if (state === null || typeof state !== 'object') throw new Error('WindowSampler.loadState: state must be { seed, drawn }');
    checkSeed(state.seed);
    if (!Number.isSafeInteger(state.drawn) || state.drawn < 0) throw new Error(`WindowSampler.loadState: drawn must be an integer >= 0, got ${state.drawn}`);
    this.seed = state.seed >>> 0;
    this.drawn = state.drawn;
  }
}

/**
 * The fixed validation windows: `count` windows of blockSize + 1 tokens spread evenly over
 * the val split (the same every evaluation, so val losses are comparable across steps).
 * Returns their start offsets.
 */
export function evalWindowStarts(dataset: TokenDataset, blockSize: number, count: number): number[] {
  checkPositive('blockSize', blockSize);
  const [begin, end] = dataset.range('val');
  const starts = end - begin - blockSize; // possible starts
  if (starts < 1 || count < 1) return [];
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(begin + (count === 1 ? 0 : Math.floor((i * (starts - 1)) / (count - 1))));
  return out;
}

function checkPositive(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${String(v)}`);
}

function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`seed must be an integer in [0, 2^32), got ${String(seed)}`);
}
