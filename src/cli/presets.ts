// Model sizes and the training defaults that go with them. The vocabulary comes from the
// tokenizer, so a preset fixes everything else.

import type { GPTConfigInput } from '../model/config.js';

export interface Preset {
  description: string;
  model: Omit<GPTConfigInput, 'vocabSize'>;
  /** Defaults of `ferrogpt train` for this size (each has a flag). */
  batch: number;
  lr: number;
  warmup: number;
}

export const PRESETS = {
  // nanoGPT's "CPU" shakespeare_char config (README: "I can train on a MacBook").
  tiny: { description: '4 layers, 4 heads, 128 channels, context 64 (~0.8M params + vocab)', model: { nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 64, dropout: 0 }, batch: 12, lr: 1e-3, warmup: 20 },
  // nanoGPT's shakespeare_char "baby GPT".
  small: { description: '6 layers, 6 heads, 384 channels, context 256 (~10.7M params + vocab)', model: { nLayer: 6, nHead: 6, nEmbd: 384, blockSize: 256, dropout: 0.2 }, batch: 16, lr: 1e-3, warmup: 100 },
  // GPT-2 small; lr and warmup of nanoGPT's train_gpt2 config.
  'gpt2-124m': { description: '12 layers, 12 heads, 768 channels, context 1024 (GPT-2 small)', model: { nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 1024, dropout: 0 }, batch: 4, lr: 6e-4, warmup: 200 },
} satisfies Record<string, Preset>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];
