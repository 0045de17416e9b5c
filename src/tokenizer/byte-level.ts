// GPT-2's byte-level pieces: the pre-tokenization regex and the bytes ↔ unicode mapping.
//
// Byte-level BPE works on UTF-8 bytes, so any text (emoji, CJK, invalid surrogates
// replaced by U+FFFD) can be encoded without an "unknown" token. But BPE vocabularies are
// stored as strings in JSON, and raw bytes such as 0x00 or 0x20 make awkward strings. GPT-2
// therefore maps each of the 256 bytes to a printable unicode character: printable Latin-1
// bytes map to themselves, the others (control characters, space, ...) to U+0100 and up.
// That is why GPT-2 tokens look like "Ġthe": 'Ġ' (U+0120) is the space byte 0x20.

/**
 * GPT-2's pre-tokenization: text is first split into "words" (contractions, letter runs,
 * digit runs, punctuation runs, each with at most one leading space; whitespace runs), and
 * BPE merges never cross these boundaries.
 *
 * One difference from Hugging Face `tokenizers` (Rust, Oniguruma regexes) is known and
 * accepted: JavaScript's `\s` includes U+FEFF but not U+0085, Oniguruma's the reverse. Text
 * containing those two characters may split differently. OpenAI's original encoder (Python
 * `regex`) and the JS ports (gpt-3-encoder, @huggingface/tokenizers) use this same regex.
 */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Split `text` into GPT-2 pre-tokens. Concatenated, they give back `text` exactly. */
export function preTokenize(text: string): string[] {
  return text.match(GPT2_PATTERN) ?? [];
}

/** BYTE_TO_CHAR[b] is the printable character that stands for byte b in vocabularies. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable: number[] = [];
  const add = (from: string, to: string) => {
    for (let b = from.charCodeAt(0); b <= to.charCodeAt(0); b++) printable.push(b);
  };
  add('!', '~');
  add('¡', '¬');
  add('®', 'ÿ');
  const table: string[] = new Array(256);
  for (const b of printable) table[b] = String.fromCharCode(b);
  // The remaining bytes, in increasing order, take U+0100, U+0101, ...
  let next = 256;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCharCode(next++);
  }
  return table;
})();

/** The inverse of BYTE_TO_CHAR. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const utf8 = new TextEncoder();

/** UTF-8 encode `text` and write each byte as its BYTE_TO_CHAR character. */
export function toByteLevel(text: string): string {
  let out = '';
  for (const b of utf8.encode(text)) out += BYTE_TO_CHAR[b];
  return out;
}

/** Bytes of a byte-level token string, or undefined when a character is not a byte symbol. */
export function fromByteLevel(token: string): Uint8Array | undefined {
  const out = new Uint8Array(token.length); // every byte symbol is one UTF-16 unit
  for (let i = 0; i < token.length; i++) {
    const b = CHAR_TO_BYTE.get(token[i]!);
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}
