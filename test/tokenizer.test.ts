// Tokenizer tests: GPT-2's vocabulary against an independent implementation
// (gpt-3-encoder), trained BPE and char tokenizers, and tokenizer.json compatibility with
// Hugging Face's own JavaScript tokenizers (@huggingface/tokenizers).

import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tokenizer } from '../src/tokenizer/index.js';

const require = createRequire(import.meta.url);
const gpt3Encoder = require('gpt-3-encoder') as { encode(text: string): number[]; decode(ids: number[]): string };

// transformers' decode by default "cleans up" spaces before punctuation (" ?" → "?"), which
// is lossy; a raw round trip needs it off.
const HF_CONFIG = { clean_up_tokenization_spaces: false };

const CORPUS = fileURLToPath(new URL('../data/corpus.txt', import.meta.url));

/** Text that exercises every branch of the GPT-2 regex and multi-byte UTF-8. */
const VARIED = [
  "It's a truth universally acknowledged; they're sure we've done what I'm told you'll find he'd say.",
  "Don't STOP. 'Tis the season — café, naïve, Ærøskøbing, São Paulo, Łódź, Zürich!",
  '東京は日本の首都です。中文测试：你好，世界。한국어 문장도 있습니다. Русский текст, ελληνικά.',
  'Emoji: 😀🎉👩‍👩‍👧‍👦 🇫🇷 ❤️ and a thumbs up 👍🏽.',
  'Numbers 3.14159, 1,000,000 and 42nd; 2024-06-01T12:00:00Z; 0x1F600; 1e-9.',
  'Whitespace:   three spaces,\ttab,\t\ttwo tabs,\nnewline\n\n\nthree newlines  \n trailing   ',
  'Punctuation!!! ??? ... ;;; (parens) [brackets] {braces} <angle> "quotes" `code` ~tilde~ @user #tag $5 %p ^ & * _ + = | \\ /',
  "Contractions again: 's 't 're 've 'm 'll 'd 'S 'T (upper case are not contractions) o'clock",
  '    leading spaces and a final newline\n',
].join('\n');

describe('GPT-2 tokenizer', () => {
  let gpt2: Tokenizer;
  beforeAll(async () => {
    gpt2 = await Tokenizer.gpt2();
  });

  it('has GPT-2 vocabulary size and <|endoftext|> id', () => {
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.eosId).toBe(50256);
    expect(gpt2.type).toBe('bpe');
    expect(gpt2.encode('<|endoftext|>')).toEqual([50256]);
    expect(gpt2.encode('<|endoftext|>', { allowSpecial: false }).length).toBeGreaterThan(1);
  });

  it('encodes exactly like gpt-3-encoder, line by line and as a whole', () => {
    for (const line of VARIED.split('\n')) expect(gpt2.encode(line)).toEqual(gpt3Encoder.encode(line));
    expect(gpt2.encode(VARIED)).toEqual(gpt3Encoder.encode(VARIED));
  });

  it('known ids: "Hello world" is [15496, 995]', () => {
    expect(gpt2.encode('Hello world')).toEqual([15496, 995]);
  });

  it('decodes back to the original text', () => {
    const ids = gpt2.encode(VARIED);
    expect(gpt2.decode(ids)).toBe(VARIED);
    expect(gpt3Encoder.decode(ids)).toBe(VARIED);
    expect(new TextDecoder().decode(gpt2.decodeBytes(ids))).toBe(VARIED);
    expect(gpt2.decode(gpt2.encodeInt32(VARIED))).toBe(VARIED);
  });

  it('decodeBytes gives the bytes of partial characters (for streaming)', () => {
    // An emoji is usually several tokens of one or two bytes each.
    const ids = gpt2.encode('😀');
    expect(ids.length).toBeGreaterThan(1);
    const bytes = Array.from(ids, (id) => Array.from(gpt2.decodeBytes([id]))).flat();
    expect(bytes).toEqual([0xf0, 0x9f, 0x98, 0x80]);
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => gpt2.decode([50257])).toThrow(/50257.*not in the vocabulary/);
    expect(() => gpt2.decode([-1])).toThrow(/not in the vocabulary/);
    expect(() => gpt2.decode([1.5])).toThrow(/not in the vocabulary/);
  });

  it('matches @huggingface/tokenizers on its own tokenizer.json', () => {
    const hf = new HfTokenizer(gpt2.toJSON(), HF_CONFIG);
    expect(hf.encode(VARIED).ids).toEqual(gpt2.encode(VARIED));
  });
});

describe('trained tokenizers', () => {
  let dir: string;
  let corpus: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferrogpt-tokenizer-'));
    corpus = await readFile(CORPUS, 'utf8');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const vocabSize of [300, 1000]) {
    it(`BPE with vocabSize ${vocabSize}: exact size, round trip, HF-compatible tokenizer.json`, async () => {
      const tok = await Tokenizer.train([CORPUS], { vocabSize, type: 'bpe' });
      expect(tok.vocabSize).toBe(vocabSize);
      expect(tok.eosId).toBe(vocabSize - 1);
      expect(tok.decode([tok.eosId])).toBe('<|endoftext|>');

      // Arbitrary text, including characters the corpus (plain ASCII) never contains.
      for (const text of [VARIED, corpus.slice(0, 20_000), '', ' ', '\u0000\u0001 \uFFFD']) {
        expect(tok.decode(tok.encode(text))).toBe(text);
      }
      // Compression: learned merges make in-domain text much shorter than its bytes.
      const sample = corpus.slice(100_000, 110_000);
      expect(tok.encode(sample).length).toBeLessThan(sample.length * (vocabSize >= 1000 ? 0.45 : 0.7));

      const path = join(dir, `bpe-${vocabSize}.json`);
      await tok.save(path);
      const json = JSON.parse(await readFile(path, 'utf8'));
      expect(json.model.type).toBe('BPE');
      expect(json.pre_tokenizer.type).toBe('ByteLevel');
      expect(Object.keys(json.model.vocab).length).toBe(vocabSize);

      const reloaded = await Tokenizer.load(path);
      expect(reloaded.vocabSize).toBe(vocabSize);
      expect(reloaded.encode(VARIED)).toEqual(tok.encode(VARIED));

      const hf = new HfTokenizer(json, HF_CONFIG);
      const text = `${sample}\n${VARIED}<|endoftext|>The end.`;
      expect(hf.encode(text).ids).toEqual(tok.encode(text));
      expect(hf.decode(tok.encode(text))).toBe(text);
    });
  }

  it('BPE training is deterministic and fast enough on the bundled corpus', () => {
    const t0 = performance.now();
    const a = Tokenizer.trainFromTexts([corpus], { vocabSize: 2000 });
    const seconds = (performance.now() - t0) / 1000;
    const b = Tokenizer.trainFromTexts([corpus], { vocabSize: 2000 });
    expect(JSON.stringify(a.toJSON())).toBe(JSON.stringify(b.toJSON()));
    // Not a benchmark: a loose bound that catches an accidentally quadratic trainer.
    expect(seconds).toBeLessThan(30);
  });

  it('treats <|endoftext|> in training text as a boundary', () => {
    const tok = Tokenizer.trainFromTexts(['aaaa<|endoftext|>aaaa<|endoftext|>'], { vocabSize: 259 });
    // Two merges fit: 'a'+'a' (256), then 'aa'+'aa' (257); <|endoftext|> is 258.
    expect(tok.encode('aaaa<|endoftext|>')).toEqual([257, 258]);
  });

  it('reports a vocabSize the text cannot fill', () => {
    expect(() => Tokenizer.trainFromTexts(['ab ab'], { vocabSize: 300 })).toThrow(/no pairs left to merge/);
    expect(() => Tokenizer.trainFromTexts(['ab'], { vocabSize: 10 })).toThrow(/vocabSize must be an integer ≥ 257/);
    expect(() => Tokenizer.trainFromTexts(['ab'], {})).toThrow(/needs a vocabSize/);
  });

  it('char tokenizer: one id per character, byte fallback for unseen ones, HF-compatible', async () => {
    const tok = await Tokenizer.train([CORPUS], { type: 'char' });
    expect(tok.type).toBe('char');
    const distinct = new Set(corpus).size;
    expect(tok.vocabSize).toBe(256 + distinct + 1);
    expect(tok.eosId).toBe(tok.vocabSize - 1);

    const sample = corpus.slice(5000, 8000);
    expect(tok.encode(sample).length).toBe([...sample].length);
    expect(tok.decode(tok.encode(sample))).toBe(sample);
    // Unseen characters are spelled as UTF-8 bytes (<0x..> tokens, ids 0..255).
    expect(tok.encode('é')).toEqual([0xc3, 0xa9]);
    expect(tok.decode(tok.encode(VARIED))).toBe(VARIED);

    const path = join(dir, 'char.json');
    await tok.save(path);
    const json = JSON.parse(await readFile(path, 'utf8'));
    const reloaded = await Tokenizer.load(path);
    expect(reloaded.encode(VARIED)).toEqual(tok.encode(VARIED));
    const hf = new HfTokenizer(json, HF_CONFIG);
    const text = `${sample}<|endoftext|>${VARIED}`;
    expect(hf.encode(text).ids).toEqual(tok.encode(text));
    expect(hf.decode(tok.encode(text))).toBe(text);
  });

  it('char tokenizer honours vocabSize by keeping the most frequent characters', () => {
    const tok = Tokenizer.trainFromTexts(['aaabbc'], { type: 'char', vocabSize: 259 });
    expect(tok.vocabSize).toBe(259);
    expect(tok.encode('abc')).toEqual([256, 257, 0x63]); // 'c' fell back to its byte
    expect(tok.decode(tok.encode('abc'))).toBe('abc');
    expect(() => Tokenizer.trainFromTexts(['ab'], { type: 'char', vocabSize: 300 })).toThrow(/only 2 distinct/);
  });

  it('save is atomic: no temporary file is left behind', async () => {
    const sub = await mkdtemp(join(dir, 'atomic-'));
    const tok = Tokenizer.trainFromTexts(['hello hello world'], { vocabSize: 260 });
    await writeFile(join(sub, 'tokenizer.json'), 'old');
    await tok.save(join(sub, 'tokenizer.json'));
    expect(await readdir(sub)).toEqual(['tokenizer.json']);
    expect((await Tokenizer.load(join(sub, 'tokenizer.json'))).vocabSize).toBe(260);
    expect((await Tokenizer.load(sub)).vocabSize).toBe(260); // a model folder works too
  });

  it('rejects tokenizer.json files it does not understand', () => {
    expect(() => Tokenizer.fromJSON({})).toThrow(/no "model"/);
    expect(() => Tokenizer.fromJSON({ model: { type: 'WordPiece', vocab: {} } })).toThrow(/WordPiece.*not supported/);
  });
});
