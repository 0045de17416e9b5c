// `ferrogpt convert`: a model folder (`ferrogpt train`'s, or a Hugging Face GPT-2 folder)
// written again with its weights in another dtype: int8 or bf16 for inference (a quarter or
// half of the bytes; src/model/weights.ts), or f32. tokenizer.json is copied along, so the
// new folder works wherever the old one did (`ferrogpt sample --model <out>`).

import { copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GPT } from '../model/gpt.js';
import { WEIGHT_DTYPES } from '../model/weights.js';
import { HELP_OPTION, UsageError, choiceValue, parseCommandOrHelp, stringValue, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, backendChoice, logLine, setupBackend } from './env.js';

export const CONVERT_SPEC: CommandSpec = {
  name: 'convert',
  usage: 'ferrogpt convert --model <dir> --dtype f32|bf16|int8 --out <dir>',
  summary: 'Write a model folder again with its weights in bf16 or int8 (or f32).',
  options: {
    model: { type: 'string', value: 'DIR', help: 'model folder: config.json, model.safetensors (and tokenizer.json, copied)' },
    dtype: { type: 'string', value: 'DTYPE', help: 'f32, bf16 or int8 (blocks of 32 weights with one scale, llama.cpp Q8_0)' },
    out: { type: 'string', value: 'DIR', help: 'the folder to write (created; must not be --model)' },
    ...BACKEND_OPTIONS,
    help: HELP_OPTION,
  },
  epilog: ['Examples:', '  ferrogpt convert --model ferrogpt-demo --dtype int8 --out ferrogpt-demo-int8', '  ferrogpt sample --model ferrogpt-demo-int8 -p "Elizabeth"'].join('\n'),
};

export async function convertCommand(argv: string[]): Promise<number> {
  const values = parseCommandOrHelp(CONVERT_SPEC, argv);
  if (values === null) return 0;
  const modelDir = stringValue(values, 'model');
  if (modelDir === undefined) throw new UsageError('--model is required (a model folder)', 'convert');
  const dtype = choiceValue(values, 'dtype', WEIGHT_DTYPES);
  if (dtype === undefined) throw new UsageError(`--dtype is required (${WEIGHT_DTYPES.join(', ')})`, 'convert');
  const outDir = stringValue(values, 'out');
  if (outDir === undefined) throw new UsageError('--out is required (the folder to write)', 'convert');
  const [from, to] = [resolve(modelDir), resolve(outDir)];
  if (from === to) throw new UsageError('--out must be another folder than --model (the model is read while the new one is written)', 'convert');
  for (const f of ['config.json', 'model.safetensors']) {
    if (!existsSync(join(from, f))) throw new Error(`${from} has no ${f}; --model takes a model folder (written by \`ferrogpt train\`, or a Hugging Face GPT-2 folder)`);
  }
  if (existsSync(join(from, 'task.json'))) throw new Error(`${from} is a fine-tuned folder (it has task.json); convert takes a plain model folder, and eval and predict take --dtype themselves`);
  await setupBackend(backendChoice(values), logLine);
  const model = await GPT.load(from, { dtype });
  try {
    await model.save(to);
  } finally {
    model.dispose();
  }
  if (existsSync(join(from, 'tokenizer.json'))) await copyFile(join(from, 'tokenizer.json'), join(to, 'tokenizer.json'));
  logLine(`wrote ${to} (${dtype} weights)`);
  return 0;
}
