// The Hugging Face tokenizer.json format: the parts ferrogpt writes and reads.
//
// ferrogpt saves tokenizers in this standard format so that the same file loads in Python
// (`tokenizers.Tokenizer.from_file`, `transformers.PreTrainedTokenizerFast`), in browsers
// (`@huggingface/tokenizers`, transformers.js) and back into ferrogpt. Two shapes are used:
//
// - byte-level BPE (GPT-2 and `type: 'bpe'`): model BPE over byte symbols, with the
//   ByteLevel pre-tokenizer (GPT-2 regex + bytes→unicode), post-processor and decoder,
//   exactly like GPT-2's own tokenizer.json on the Hugging Face hub;
// - characters (`type: 'char'`): model BPE with no merges whose vocabulary is single
//   characters plus the 256 byte tokens <0x00>..<0xFF>, no pre-tokenizer, and
//   `byte_fallback: true`: a character outside the vocabulary is spelled as its UTF-8 bytes
//   (the scheme of Llama's tokenizer), so every text round-trips. The decoder sequence
//   ByteFallback + Fuse turns those bytes back into text.

export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export interface BpeModelJson {
  type: 'BPE';
  dropout: number | null;
  unk_token: string | null;
  continuing_subword_prefix: string | null;
  end_of_word_suffix: string | null;
  fuse_unk: boolean;
  byte_fallback: boolean;
  vocab: Record<string, number>;
  /** "left right" strings (the classic form), or [left, right] pairs (tokenizers ≥ 0.20). */
  merges: (string | [string, string])[];
}

/** A component (pre-tokenizer, decoder, ...): a `type` plus that type's options. */
export interface ComponentJson {
  type: string;
  [option: string]: unknown;
}

export interface TokenizerJson {
  version: string;
  truncation: null | object;
  padding: null | object;
  added_tokens: AddedToken[];
  normalizer: ComponentJson | null;
  pre_tokenizer: ComponentJson | null;
  post_processor: ComponentJson | null;
  decoder: ComponentJson | null;
  model: BpeModelJson;
}

export const END_OF_TEXT = '<|endoftext|>';

export function specialToken(id: number, content: string): AddedToken {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** Byte-level BPE in the form of GPT-2's hub tokenizer.json. */
export function byteLevelJson(
  vocab: Record<string, number>,
  merges: [string, string][],
  added: AddedToken[],
): TokenizerJson {
  // Every byte-level component of GPT-2's file carries the same four options.
  const byteLevel = (addPrefixSpace: boolean, trimOffsets: boolean): ComponentJson => ({
    type: 'ByteLevel',
    add_prefix_space: addPrefixSpace,
    trim_offsets: trimOffsets,
    use_regex: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel(false, true),
    post_processor: byteLevel(true, false),
    decoder: byteLevel(true, true),
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      // Byte-level tokens never contain a space (0x20 is written 'Ġ'), so the classic
      // space-separated form is unambiguous and read by every version of every reader.
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** A character vocabulary with byte fallback (see the header). */
export function charJson(vocab: Record<string, number>, added: AddedToken[]): TokenizerJson {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: true,
      vocab,
      merges: [],
    },
  };
}

/** The name of byte b's fallback token, e.g. <0x0A> (upper-case hex, as Hugging Face). */
export function byteFallbackToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** Parse a merge in either form into [left, right]. */
export function parseMerge(m: unknown, index: number): [string, string] {
  if (typeof m === 'string') {
    const parts = m.split(' ');
    if (parts.length === 2 && parts[0] !== '' && parts[1] !== '') return [parts[0]!, parts[1]!];
  } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
    return [m[0], m[1]];
  }
  throw new Error(`tokenizer.json: merge ${index} (${JSON.stringify(m)}) is not "left right" or [left, right]`);
}
