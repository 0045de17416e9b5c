// Files the CLI and load tests start from: a scratch folder per describe block, a model
// folder (a new GPT and its tokenizer) and JSON Lines task files.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { GPTConfigInput } from '../../src/model/config.js';
import { GPT } from '../../src/model/gpt.js';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.js';

/** A new GPT of `config`, saved with `tokenizer` as a model folder at `path`; returns `path`. */
export async function saveModelFolder(path: string, config: GPTConfigInput, tokenizer: Tokenizer): Promise<string> {
  const model = GPT.create(config);
  try {
    await model.save(path);
    await tokenizer.save(join(path, 'tokenizer.json'));
  } finally {
    model.dispose();
  }
  return path;
}

/** `rows` as JSON Lines at `path`. */
export async function writeJsonl(path: string, rows: readonly object[]): Promise<void> {
  await writeFile(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** A scratch folder made before a describe block's tests and removed after them: call in the block, read with the returned getter. */
export function useScratchDir(prefix: string): () => string {
  let dir: string | null = null;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    if (dir !== null) await rm(dir, { recursive: true, force: true });
  });
  return () => {
    if (dir === null) throw new Error('useScratchDir: the folder exists only while the block\'s tests run');
    return dir;
  };
}
