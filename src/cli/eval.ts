// `ferrogpt eval`: a fine-tuned model folder (from `ferrogpt finetune`) on a labeled dataset
// of its task → accuracy (and F1 for two classes), or Pearson / Spearman / MSE for a scored
// similarity task. The metrics go to stdout (a table, or JSON with --json).

import { resolve } from 'node:path';
import { loadTaskData } from '../tasks/data.js';
import { HELP_OPTION, UsageError, intValue, parseCommandOrHelp, stringValue, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, DTYPE_OPTIONS, backendChoice, dtypeChoice, loadFineTunedFolder, logLine } from './env.js';
import { metricsTable } from './finetune.js';

export const EVAL_SPEC: CommandSpec = {
  name: 'eval',
  usage: 'ferrogpt eval --model <dir> --data <file> [--batch N] [--json]',
  summary: 'Evaluate a fine-tuned model (from `ferrogpt finetune`) on a labeled dataset of its task.',
  options: {
    model: { type: 'string', value: 'DIR', help: 'fine-tuned model folder (with task.json), or a LoRA one (`finetune --lora`)' },
    base: { type: 'string', value: 'DIR', help: 'the base model of a LoRA folder (default: the folder it names, finetune\'s --model)' },
    data: { type: 'string', value: 'FILE', help: 'labeled examples: .jsonl, .json, .csv or .tsv (fields: `ferrogpt finetune --help`)' },
    batch: { type: 'string', value: 'N', help: 'examples per forward pass (default 32)' },
    json: { type: 'boolean', help: 'print the metrics as JSON' },
    ...BACKEND_OPTIONS,
    ...DTYPE_OPTIONS,
    help: HELP_OPTION,
  },
  epilog: 'Example:\n  ferrogpt eval --model runs/sst --data sst-test.jsonl',
};

export async function evalCommand(argv: string[]): Promise<number> {
  const values = parseCommandOrHelp(EVAL_SPEC, argv);
  if (values === null) return 0;
  const modelDir = stringValue(values, 'model');
  if (modelDir === undefined) throw new UsageError('--model is required (a folder written by `ferrogpt finetune`)');
  const dataPath = stringValue(values, 'data');
  if (dataPath === undefined) throw new UsageError('--data is required (a labeled .jsonl, .json, .csv or .tsv file)');
  const batchSize = intValue(values, 'batch', 32, 1);
  const choice = backendChoice(values);
  const ft = await loadFineTunedFolder(modelDir, choice, logLine, stringValue(values, 'base'), dtypeChoice(values));
  try {
    const examples = await loadTaskData(resolve(dataPath), ft.task.type, { requireLabels: true });
    const { predictions: _p, truncated, ...metrics } = ft.evaluate(examples, { batchSize });
    if (values.json) process.stdout.write(JSON.stringify({ ...metrics, truncated }) + '\n');
    else {
      process.stdout.write(metricsTable([{ label: `${ft.task.type} ${dataPath}`, metrics }]));
      if (truncated > 0) process.stderr.write(`${truncated} examples were truncated to ${ft.task.maxLength} tokens\n`);
    }
  } finally {
    ft.dispose();
  }
  return 0;
}
