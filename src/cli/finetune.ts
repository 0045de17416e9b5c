// `ferrogpt finetune`: a pre-trained model folder + a labeled task dataset → a fine-tuned
// model folder (GPT-1's L3 = L2 + λ·L1; see src/train/finetune.ts).
//
// The output folder (--out) holds what FineTunedGPT.save writes — config.json,
// model.safetensors (with the head), tokenizer.json, task.json — plus metrics.json: the
// settings, the validation metrics after every epoch and the truncation counts.
// `ferrogpt eval` and `ferrogpt predict` read it. Also:
//   run.json      the settings, so --resume needs no flags
//   checkpoint/   finetune()'s checkpoint (replaced atomically; after every epoch, every
//                 --checkpoint-every updates, and on Ctrl-C): --resume continues from it,
//                 bit for bit as if the run had not stopped
// With --lora R the model stays frozen and a LoRA adapter of rank R trains with the head;
// --out then holds PEFT's adapter folder (adapter_config.json, adapter_model.safetensors)
// instead of config.json and model.safetensors, naming --model as its base, which `eval`
// and `predict` load it onto (--merge saves the merged model instead).

import { PRECISIONS, type Precision } from '../model/weights.js';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { findCheckpoint } from '../train/checkpoint.js';
import type { TaskMetrics } from '../tasks/metrics.js';
import { TASK_TYPES, type TaskType } from '../tasks/transform.js';
import { ALL_LINEAR, LORA_DEFAULTS, type LoraOptions } from '../model/lora.js';
import { FINETUNE_PRESETS, LORA_LR_RATIO, finetune, finetuneRecipe, type FineTunePreset, type FineTuneStepInfo } from '../train/finetune.js';
import { HELP_OPTION, UsageError, choiceValue, intValue, numValue, parseCommandOrHelp, stringValue, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, backendChoice, loadModelFolder, logLine as log } from './env.js';
import { bar, formatDuration } from './progress.js';

export const FINETUNE_SPEC: CommandSpec = {
  name: 'finetune',
  usage: 'ferrogpt finetune --model <dir> --task <type> --train <file> [--valid <file>] --out <dir> [options]',
  summary: 'Fine-tune a model on a labeled task (GPT-1: classification, entailment, similarity, multiple choice).',
  options: {
    model: { type: 'string', value: 'DIR', help: 'pre-trained model folder (config.json, model.safetensors, tokenizer.json)' },
    task: { type: 'string', value: 'TYPE', help: `${TASK_TYPES.join(' | ')}` },
    train: { type: 'string', value: 'FILE', help: 'training examples: .jsonl, .json, .csv or .tsv (fields: see below)' },
    valid: { type: 'string', value: 'FILE', help: 'validation examples, evaluated after every epoch' },
    out: { type: 'string', value: 'DIR', help: 'output folder (default ./ferrogpt-finetuned)' },
    labels: { type: 'string', value: 'A,B,..', help: 'class names in order (default: the training labels, sorted)' },
    regression: { type: 'boolean', help: 'similarity scored by a number (field "score"): one output, MSE (default when every example has a score)' },
    preset: { type: 'string', value: 'NAME', help: "whose defaults the flags below take: default, or gpt1 (GPT-1's published recipe, lr 6.25e-5)" },
    lambda: { type: 'string', value: 'X', help: 'weight of the auxiliary LM loss, L3 = L2 + λ·L1; 0 turns it off (default 0.5)' },
    epochs: { type: 'string', value: 'N', help: 'passes over the training examples (default 3)' },
    batch: { type: 'string', value: 'N', help: 'examples per update (default 8; --preset gpt1: 32)' },
    lr: { type: 'string', value: 'X', help: 'peak learning rate, linear warmup then linear decay (default 6.25e-5 · 768 / the model\'s width; gpt1: 6.25e-5)' },
    warmup: { type: 'string', value: 'X', help: 'warmup: a fraction of the updates (< 1) or a count (default 0.002)' },
    dropout: { type: 'string', value: 'P', help: 'model dropout (default 0.1)' },
    'clf-dropout': { type: 'string', value: 'P', help: 'dropout before the head (default 0.1)' },
    'max-length': { type: 'string', value: 'N', help: 'longest input in tokens; longer ones are cut (default: the model\'s block size)' },
    seed: { type: 'string', value: 'N', help: 'seed of the example order and the head (default 1337)' },
    'checkpoint-every': { type: 'string', value: 'N', help: 'also checkpoint every N updates (default 0: after every epoch only)' },
    precision: { type: 'string', value: 'P', help: 'f32 (default) or bf16: mixed precision, the matmuls in bf16 with f32 accumulation, master weights and optimizer in f32' },
    lora: { type: 'string', value: 'R', help: `LoRA of rank R instead of full fine-tuning: the model stays frozen, an adapter and the head train (lr default ${LORA_LR_RATIO}× full fine-tuning's); --out gets a PEFT adapter folder` },
    'lora-alpha': { type: 'string', value: 'X', help: `LoRA alpha: the branches are scaled by alpha / R (default ${LORA_DEFAULTS.alpha})` },
    'lora-dropout': { type: 'string', value: 'P', help: `dropout on the LoRA branches' inputs (default ${LORA_DEFAULTS.dropout})` },
    'lora-targets': { type: 'string', value: 'A,B,..', help: `layers to adapt, PEFT module names: c_attn, c_proj, c_fc (or ${ALL_LINEAR}) (default ${(LORA_DEFAULTS.targets as string[]).join(',')})` },
    merge: { type: 'boolean', help: 'with --lora: fold the adapter into the weights and save the plain fine-tuned model instead of the adapter folder' },
    resume: { type: 'boolean', help: 'continue the run in --out from its checkpoint (same settings unless given)' },
    ...BACKEND_OPTIONS,
    help: HELP_OPTION,
  },
  epilog: [
    'Fields per task type (JSON Lines: one object a line; CSV/TSV: a header row):',
    '  classification  text, label',
    '  entailment      premise, hypothesis, label',
    '  similarity      text1, text2, label (classes) or score (a number)',
    '  choice          context, choices (JSON array; CSV: choice0, choice1, ...), label (index of the right one)',
    '',
    'Examples:',
    '  ferrogpt finetune --model runs/austen --task classification --train sst.jsonl --valid sst-dev.jsonl --out runs/sst',
    '  ferrogpt finetune --model runs/austen --task entailment --train nli.csv --lambda 0 --epochs 2 --out runs/nli',
    '  ferrogpt finetune --out runs/sst --resume          # after Ctrl-C: continues exactly',
    '  ferrogpt finetune --model runs/austen --task classification --train sst.jsonl --lora 8 --out runs/sst-lora',
    '',
    'Ctrl-C stops after the current update and saves the model as it is, and a checkpoint that --resume continues.',
  ].join('\n'),
};

/** Everything a run needs, after defaults. Recorded in run.json. */
interface FinetuneSettings {
  command: 'finetune';
  model: string;
  task: TaskType;
  train: string;
  valid: string | null;
  labels: string[] | null;
  regression: boolean;
  maxLength: number | null;
  preset: FineTunePreset;
  // The recipe: null where no flag was given, so the preset's default applies (finetuneRecipe).
  lambda: number | null;
  epochs: number | null;
  batchSize: number | null;
  lr: number | null;
  warmup: number | null;
  dropout: number | null;
  clfDropout: number | null;
  seed: number;
  checkpointEvery: number;
  /** LoRA settings, or null for full fine-tuning. */
  lora: { rank: number; alpha: number; dropout: number; targets: string[] | typeof ALL_LINEAR } | null;
  merge: boolean;
  precision: Precision;
}

/** Flags → settings. With --resume, run.json in --out supplies every flag not given. */
async function resolveSettings(values: Record<string, string | boolean | undefined>, out: string, resume: boolean): Promise<FinetuneSettings> {
  let saved: Partial<FinetuneSettings> = {};
  if (resume) {
    const runPath = join(out, 'run.json');
    if (!existsSync(runPath)) throw new UsageError(`--resume: ${out} holds no fine-tuning run to resume (no run.json); start one with --model, --task and --train`);
    saved = JSON.parse(await readFile(runPath, 'utf8')) as Partial<FinetuneSettings>;
    if (saved.command !== 'finetune') throw new UsageError(`--resume: ${join(out, 'run.json')} is not a fine-tuning run's (ferrogpt train --resume continues a pre-training run)`);
  }
  const model = stringValue(values, 'model') ?? saved.model;
  if (model === undefined) throw new UsageError('--model is required (a folder written by `ferrogpt train`, or a GPT-2 folder with tokenizer.json)');
  const task = choiceValue(values, 'task', TASK_TYPES) ?? saved.task;
  if (task === undefined) throw new UsageError(`--task is required: ${TASK_TYPES.join(', ')}`);
  const trainPath = stringValue(values, 'train') ?? saved.train;
  if (trainPath === undefined) throw new UsageError('--train is required (a .jsonl, .json, .csv or .tsv file of examples)');
  const validPath = stringValue(values, 'valid') ?? saved.valid ?? undefined;
  const labelsArg = stringValue(values, 'labels');
  const labels = labelsArg === undefined ? (saved.labels ?? undefined) : labelsArg.split(',').map((l) => l.trim());
  if (labelsArg !== undefined && labels !== undefined && (labels.length < 2 || labels.some((l) => l === ''))) {
    throw new UsageError(`--labels must name at least 2 classes, comma-separated, got ${JSON.stringify(labelsArg)}`);
  }
  const regression = values.regression === true || (values.regression === undefined && saved.regression === true);
  if (regression && task !== 'similarity') throw new UsageError('--regression is for --task similarity');
  const maxLength = values['max-length'] === undefined ? (saved.maxLength ?? null) : intValue(values, 'max-length', 0, 3);
  const preset = choiceValue(values, 'preset', Object.keys(FINETUNE_PRESETS) as FineTunePreset[]) ?? saved.preset ?? 'default';
  // A flag given, else run.json's value (null there too: the preset's default).
  const num = (flag: string, key: keyof FinetuneSettings, min: number, max?: number): number | null =>
    values[flag] === undefined ? ((saved[key] as number | null | undefined) ?? null) : numValue(values, flag, 0, min, max);
  const int = (flag: string, key: keyof FinetuneSettings, min: number): number | null =>
    values[flag] === undefined ? ((saved[key] as number | null | undefined) ?? null) : intValue(values, flag, 0, min);
  const lora = loraSettings(values, saved.lora ?? null);
  const merge = values.merge === true || (values.merge === undefined && saved.merge === true);
  if (merge && lora === null) throw new UsageError('--merge is for --lora runs');
  const settings: FinetuneSettings = {
    command: 'finetune',
    model: resolve(model),
    task,
    train: resolve(trainPath),
    valid: validPath === undefined ? null : resolve(validPath),
    labels: labels ?? null,
    regression,
    maxLength,
    preset,
    lambda: num('lambda', 'lambda', 0),
    epochs: int('epochs', 'epochs', 1),
    batchSize: int('batch', 'batchSize', 1),
    lr: num('lr', 'lr', 0),
    warmup: num('warmup', 'warmup', 0),
    dropout: num('dropout', 'dropout', 0, 0.99),
    clfDropout: num('clf-dropout', 'clfDropout', 0, 0.99),
    seed: intValue(values, 'seed', saved.seed ?? 1337, 0),
    checkpointEvery: intValue(values, 'checkpoint-every', saved.checkpointEvery ?? 0, 0),
    lora,
    merge,
    precision: choiceValue(values, 'precision', PRECISIONS) ?? saved.precision ?? 'f32',
  };
  if (settings.seed > 0xffffffff) throw new UsageError(`--seed must be below 2^32, got ${settings.seed}`);
  return settings;
}

/** --lora R and its --lora-* flags → the run's LoRA settings (run.json's when resuming and not given), or null. */
function loraSettings(values: Record<string, string | boolean | undefined>, saved: FinetuneSettings['lora']): FinetuneSettings['lora'] {
  const given = (['lora-alpha', 'lora-dropout', 'lora-targets'] as const).filter((k) => values[k] !== undefined);
  if (values.lora === undefined && saved === null) {
    if (given.length > 0) throw new UsageError(`--${given[0]} needs --lora R (the rank)`);
    return null;
  }
  const base = saved ?? { rank: 0, alpha: LORA_DEFAULTS.alpha, dropout: LORA_DEFAULTS.dropout, targets: [...(LORA_DEFAULTS.targets as string[])] };
  const rank = intValue(values, 'lora', base.rank, 1);
  const alpha = numValue(values, 'lora-alpha', base.alpha, 0);
  if (!(alpha > 0)) throw new UsageError(`--lora-alpha must be a number > 0, got ${JSON.stringify(values['lora-alpha'])}`);
  const dropout = numValue(values, 'lora-dropout', base.dropout, 0, 0.99);
  const raw = stringValue(values, 'lora-targets');
  let targets = base.targets;
  if (raw !== undefined) {
    const list = raw.split(',').map((t) => t.trim());
    if (list.some((t) => t === '')) throw new UsageError(`--lora-targets takes comma-separated module names (c_attn, c_proj, c_fc) or ${ALL_LINEAR}, got ${JSON.stringify(raw)}`);
    targets = list.length === 1 && list[0] === ALL_LINEAR ? ALL_LINEAR : list;
  }
  return { rank, alpha, dropout, targets };
}

export async function finetuneCommand(argv: string[]): Promise<number> {
  const values = parseCommandOrHelp(FINETUNE_SPEC, argv);
  if (values === null) return 0;
  const out = resolve(stringValue(values, 'out') ?? 'ferrogpt-finetuned');
  const resume = values.resume === true;
  const s = await resolveSettings(values, out, resume);
  const ckptDir = join(out, 'checkpoint');
  const found = await findCheckpoint(ckptDir);
  if (resume && found === null) throw new Error(`--resume: no checkpoint in ${ckptDir}`);
  const choice = backendChoice(values);
  const { dir, model, tokenizer } = await loadModelFolder(s.model, choice, log);
  const stop = new AbortController();
  const onSigint = (): void => {
    if (stop.signal.aborted) process.exit(130); // a second Ctrl-C: leave now
    log('\nstopping after this update and saving (Ctrl-C again to quit without saving)…');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  const progress = new FinetuneProgress();
  try {
    if (!resume && found !== null) log(`note: starting afresh: the checkpoint in ${ckptDir} will be replaced (--resume continues it)`);
    await mkdir(out, { recursive: true });
    await writeFileAtomic(join(out, 'run.json'), JSON.stringify(s, null, 2) + '\n');
    const given = { lambda: s.lambda, epochs: s.epochs, batchSize: s.batchSize, lr: s.lr, warmup: s.warmup, dropout: s.dropout, clfDropout: s.clfDropout };
    const flags = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== null));
    const settings = { ...finetuneRecipe(model.config.nEmbd, s.preset, s.lora !== null), ...flags }; // what finetune will use
    const lora: LoraOptions | undefined = s.lora ?? undefined;
    const loraText = s.lora === null ? '' : `, LoRA r ${s.lora.rank} alpha ${s.lora.alpha}${s.lora.dropout > 0 ? ` dropout ${s.lora.dropout}` : ''} on ${s.lora.targets === ALL_LINEAR ? ALL_LINEAR : s.lora.targets.join(',')}`;
    log(
      `${resume ? 'resuming' : 'fine-tuning'} ${dir} on ${s.task} (${s.train}${s.valid ? `, validation ${s.valid}` : ''}), ` +
        `${s.preset === 'default' ? '' : `preset ${s.preset}, `}λ ${settings.lambda}, ${settings.epochs} epochs, batch ${settings.batchSize}, lr ${+settings.lr.toPrecision(4)}${loraText}` +
        (resume ? ` from ${found}` : ''),
    );
    const r = await finetune({
      model,
      tokenizer,
      task: { type: s.task, train: s.train, validation: s.valid ?? undefined, labels: s.labels ?? undefined, regression: s.regression ? true : undefined, maxLength: s.maxLength ?? undefined },
      preset: s.preset,
      ...flags,
      seed: s.seed,
      checkpointDir: ckptDir,
      checkpointEvery: s.checkpointEvery,
      resume,
      onStep: (info) => progress.update(info),
      onWarning: (message) => progress.note(message),
      signal: stop.signal,
      lora,
      precision: s.precision,
    });
    progress.finish();
    if (r.addedTokens.length > 0) log(`added ${r.addedTokens.join(' ')} to the tokenizer and the embedding`);
    if (r.truncated.train + r.truncated.validation > 0) {
      log(`truncated to ${r.model.task.maxLength} tokens: ${r.truncated.train} training and ${r.truncated.validation} validation examples (the text segments are cut; the extract token is kept)`);
    }
    if (s.merge) r.model.mergeAdapter();
    await r.model.save(out); // with an adapter: the adapter folder, its base --model
    const summary = {
      model: dir,
      task: r.model.task.type,
      labels: r.model.task.labels,
      regression: r.model.task.regression,
      train: s.train,
      validation: s.valid,
      settings: { preset: s.preset, ...r.settings, maxLength: r.model.task.maxLength, lora: s.lora, merge: s.merge },
      trainableParameters: r.trainableParameters,
      steps: r.steps,
      startStep: r.startStep,
      stopped: r.stopped,
      finalLoss: r.losses.at(-1) ?? null,
      truncated: r.truncated,
      history: r.history,
      validationMetrics: r.validation,
      seconds: r.elapsedMs / 1000,
    };
    await writeFileAtomic(join(out, 'metrics.json'), JSON.stringify(summary, null, 2) + '\n');
    process.stdout.write(metricsTable(r.history.map((h) => ({ label: `epoch ${h.epoch} (step ${h.step})`, metrics: h.metrics }))));
    const what = r.model.model.adapter !== null ? `the LoRA adapter (${r.trainableParameters} trained parameters with the head; base ${dir})` : 'the fine-tuned model';
    log(`${r.stopped ? 'stopped; ' : ''}saved ${what} to ${out} (${formatDuration(r.elapsedMs / 1000)})`);
    if (r.stopped) log(`resume: ferrogpt finetune --out ${out} --resume`);
    r.model.dispose();
    if (r.model.model !== model) model.dispose();
    return r.stopped ? 130 : 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** A markdown-ish table of metrics rows (empty string when there are none). */
export function metricsTable(rows: Array<{ label: string; metrics: TaskMetrics }>): string {
  if (rows.length === 0) return '';
  const keys = (['accuracy', 'f1', 'pearson', 'spearman', 'mse', 'loss'] as const).filter((k) => rows.some((r) => r.metrics[k] !== undefined));
  const head = ['', ...keys, 'examples'];
  const body = rows.map((r) => [r.label, ...keys.map((k) => (r.metrics[k] === undefined ? '' : r.metrics[k]!.toFixed(4))), String(r.metrics.count)]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  ');
  return [line(head), ...body.map(line)].join('\n') + '\n';
}

/** One live line on a terminal (plain lines elsewhere): step, bar, losses, validation, ETA. */
class FinetuneProgress {
  private readonly stream = process.stderr;
  private readonly tty = process.stderr.isTTY === true;
  private readonly t0 = performance.now();
  private start = -1; // updates done before the first one seen (a resumed run's checkpoint step)
  private lastDraw = 0;
  private drawn = false;

  update(s: FineTuneStepInfo): void {
    if (this.start < 0) this.start = s.step - 1;
    const elapsed = (performance.now() - this.t0) / 1000;
    const eta = s.step < s.totalSteps ? `ETA ${formatDuration((elapsed / (s.step - this.start)) * (s.totalSteps - s.step))}` : `${formatDuration(elapsed)} total`;
    const fields = [`epoch ${s.epoch}`, `loss ${s.loss.toFixed(4)}`, `L2 ${s.l2.toFixed(4)}`];
    if (Number.isFinite(s.l1)) fields.push(`L1 ${s.l1.toFixed(4)}`);
    if (s.validation) fields.push(s.validation.accuracy !== undefined ? `val acc ${s.validation.accuracy.toFixed(4)}` : `val r ${(s.validation.pearson ?? NaN).toFixed(4)}`);
    fields.push(`${s.examplesPerSec.toFixed(0)} ex/s`, eta);
    const digits = String(s.totalSteps).length;
    const stepText = `step ${String(s.step).padStart(digits)}/${s.totalSteps}`;
    if (this.tty) {
      const now = performance.now();
      if (now - this.lastDraw < 80 && s.step < s.totalSteps && !s.validation) return;
      this.lastDraw = now;
      const tail = fields.join(' │ ');
      const width = (this.stream.columns || 100) - stepText.length - tail.length - 3;
      const line = width >= 10 ? `${stepText} ${bar(s.step / s.totalSteps, Math.min(30, width))} ${tail}` : `${stepText} ${tail}`.slice(0, (this.stream.columns || 100) - 1);
      this.stream.write('\r\x1b[2K' + line);
      this.drawn = true;
      if (s.validation) {
        this.stream.write('\n'); // keep each epoch's validation line on screen
        this.drawn = false;
      }
    } else {
      const every = Math.max(1, Math.round(s.totalSteps / 20));
      if (s.step === 1 || s.step % every === 0 || s.validation || s.step === s.totalSteps) this.stream.write(`${stepText}  ${fields.join(' | ')}\n`);
    }
  }

  /** A message on a line of its own (the live line is redrawn after it). */
  note(message: string): void {
    this.finish();
    this.stream.write(message + '\n');
  }

  finish(): void {
    if (this.tty && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
