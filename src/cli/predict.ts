// `ferrogpt predict`: a fine-tuned model folder on unlabeled examples → one JSON line per
// example on stdout: {"label": ..., "probabilities": {class: p, ...}} (choice: a list over
// the choices; similarity regression: {"score": x}). Examples come from a file (--data),
// one JSON object (--example), or, for classification, plain text (--text, repeatable).

import { resolve } from 'node:path';
import { loadTaskData, validateExample } from '../tasks/data.js';
import type { FineTunedGPT, Prediction } from '../tasks/finetuned.js';
import type { TaskExample } from '../tasks/transform.js';
import { HELP_OPTION, UsageError, intValue, parseCommandOrHelp, stringValue, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, DTYPE_OPTIONS, backendChoice, dtypeChoice, loadFineTunedFolder, logLine } from './env.js';

export const PREDICT_SPEC: CommandSpec = {
  name: 'predict',
  usage: 'ferrogpt predict --model <dir> (--data <file> | --example <json> | --text <text>) [--batch N]',
  summary: 'Predict with a fine-tuned model: labels and probabilities as JSON lines.',
  options: {
    model: { type: 'string', value: 'DIR', help: 'fine-tuned model folder (with task.json), or a LoRA one (`finetune --lora`)' },
    base: { type: 'string', value: 'DIR', help: 'the base model of a LoRA folder (default: the folder it names, finetune\'s --model)' },
    data: { type: 'string', value: 'FILE', help: 'examples (labels not needed): .jsonl, .json, .csv or .tsv' },
    example: { type: 'string', value: 'JSON', help: 'one example as JSON, e.g. \'{"premise": "...", "hypothesis": "..."}\'' },
    text: { type: 'string', value: 'TEXT', help: 'a text to classify (classification tasks)' },
    batch: { type: 'string', value: 'N', help: 'examples per forward pass (default 32)' },
    ...BACKEND_OPTIONS,
    ...DTYPE_OPTIONS,
    help: HELP_OPTION,
  },
  epilog: [
    'Examples:',
    '  ferrogpt predict --model runs/sst --text "a gripping, funny film"',
    '  ferrogpt predict --model runs/nli --example \'{"premise": "It rains.", "hypothesis": "It is wet."}\'',
    '  ferrogpt predict --model runs/sst --data unlabeled.jsonl > predictions.jsonl',
  ].join('\n'),
};

export async function predictCommand(argv: string[]): Promise<number> {
  const values = parseCommandOrHelp(PREDICT_SPEC, argv);
  if (values === null) return 0;
  const modelDir = stringValue(values, 'model');
  if (modelDir === undefined) throw new UsageError('--model is required (a folder written by `ferrogpt finetune`)');
  const sources = (['data', 'example', 'text'] as const).filter((k) => values[k] !== undefined);
  if (sources.length !== 1) throw new UsageError('give exactly one of --data, --example or --text');
  const batchSize = intValue(values, 'batch', 32, 1);
  const choice = backendChoice(values);
  const ft = await loadFineTunedFolder(modelDir, choice, logLine, stringValue(values, 'base'), dtypeChoice(values));
  try {
    const type = ft.task.type;
    let examples: TaskExample[];
    if (values.data !== undefined) {
      examples = await loadTaskData(resolve(String(values.data)), type, { requireLabels: false });
    } else if (values.example !== undefined) {
      let obj: unknown;
      try {
        obj = JSON.parse(String(values.example));
      } catch (err) {
        throw new UsageError(`--example is not valid JSON (${(err as Error).message})`);
      }
      examples = [validateExample(type, obj, '--example', false)];
    } else {
      if (type !== 'classification') throw new UsageError(`--text is for classification models; this one is ${type} (use --example or --data)`);
      examples = [{ text: String(values.text) }];
    }
    for (const p of ft.predictBatch(examples, { batchSize })) process.stdout.write(JSON.stringify(describe(ft, p)) + '\n');
  } finally {
    ft.dispose();
  }
  return 0;
}

/** A prediction as printed: probabilities by class name for classes. */
function describe(ft: FineTunedGPT, p: Prediction): Record<string, unknown> {
  if (p.score !== undefined) return { score: p.score };
  const labels = ft.task.labels;
  if (labels === null) return { label: p.label, probabilities: p.probabilities };
  return { label: p.label, probabilities: Object.fromEntries(labels.map((l, k) => [l, p.probabilities![k]])) };
}
