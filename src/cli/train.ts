// `ferrogpt train`: text → tokenizer → token file → model → train() → a model folder.
//
// The output folder (--out) holds:
//   config.json, model.safetensors, tokenizer.json   the final model (`ferrogpt sample --model <out>`)
//   loss.svg, losses.json                             the loss curves (drawn / raw)
//   run.json                                          the settings, so --resume needs no flags
//   tokens.bin, tokens.bin.json                       the tokenized data (rebuilt only when
//                                                     the text or tokenizer changes)
//   checkpoint/                                       train()'s checkpoint (replaced atomically)
// The checkpoint gets its own folder because saveCheckpoint swaps the whole directory.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { GPTConfigInput } from '../model/config.js';
import { GPT } from '../model/gpt.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { findCheckpoint } from '../train/checkpoint.js';
import { TokenDataset, listTextFiles, prepareData } from '../train/data.js';
import { train, type TrainResult } from '../train/train.js';
import { PRECISIONS, type Precision } from '../model/weights.js';
import { HELP_OPTION, UsageError, choiceValue, intValue, numValue, parseCommandOrHelp, stringValue, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, backendChoice, logLine as log, setupBackend } from './env.js';
import { PRESETS, PRESET_NAMES, type PresetName } from './presets.js';
import { Progress, formatDuration } from './progress.js';
import { lossCurveSvg, type LossPoint } from './svg.js';

export const TRAIN_SPEC: CommandSpec = {
  name: 'train',
  usage: 'ferrogpt train --data <file|dir> [options]',
  summary: 'Pre-train a GPT (next-token prediction) on text files; checkpoints, loss curve and the final model go to --out.',
  options: {
    data: { type: 'string', value: 'PATH', help: 'a UTF-8 text file, or a folder of .txt files' },
    tokenizer: { type: 'string', value: 'KIND', help: 'char (default), bpe:N (train a byte-level BPE of N tokens) or gpt2' },
    preset: { type: 'string', value: 'NAME', help: `model size: ${PRESET_NAMES.join(', ')} (default tiny)` },
    out: { type: 'string', value: 'DIR', help: 'output folder (default ./ferrogpt-out)' },
    steps: { type: 'string', value: 'N', help: 'optimizer updates in total (default 2000)' },
    batch: { type: 'string', value: 'N', help: 'sequences per update (default: the preset\'s)' },
    lr: { type: 'string', value: 'X', help: 'peak learning rate, cosine decay to lr/10 (default: the preset\'s)' },
    warmup: { type: 'string', value: 'N', help: 'linear warmup updates (default: the preset\'s)' },
    'block-size': { type: 'string', value: 'N', help: 'context length (default: the preset\'s)' },
    dropout: { type: 'string', value: 'P', help: 'dropout probability (default: the preset\'s)' },
    'eval-every': { type: 'string', value: 'N', help: 'validation loss every N updates (default: ~25 per run)' },
    'checkpoint-every': { type: 'string', value: 'N', help: 'checkpoint every N updates (default: ~10 per run)' },
    seed: { type: 'string', value: 'N', help: 'seed of the weights and of the batches (default 1337)' },
    resume: { type: 'boolean', help: 'continue the run in --out from its checkpoint (same settings unless given)' },
    precision: { type: 'string', value: 'P', help: 'f32 (default) or bf16: mixed precision, the matmuls in bf16 with f32 accumulation, master weights and optimizer in f32' },
    ...BACKEND_OPTIONS,
    help: HELP_OPTION,
  },
  epilog: [
    'Examples:',
    '  ferrogpt train --data data/corpus.txt --steps 2000 --out runs/austen',
    '  ferrogpt train --out runs/austen --resume          # after Ctrl-C: continues exactly',
    '  ferrogpt train --data texts/ --tokenizer bpe:4096 --preset small --out runs/small',
    '',
    'Ctrl-C stops after the current update and saves the checkpoint and the model.',
  ].join('\n'),
};

/** Everything a run needs, after defaults. Recorded in run.json. */
export interface TrainSettings {
  data: string;
  tokenizer: string;
  preset: PresetName;
  out: string;
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  blockSize: number;
  dropout: number;
  evalEvery: number;
  checkpointEvery: number;
  seed: number;
  resume: boolean;
  precision: Precision;
}

export interface TrainOutcome {
  model: GPT;
  tokenizer: Tokenizer;
  result: TrainResult;
  out: string;
  svg: string;
}

export async function trainCommand(argv: string[]): Promise<number> {
  const values = parseCommandOrHelp(TRAIN_SPEC, argv);
  if (values === null) return 0;
  const choice = backendChoice(values);
  const settings = await resolveSettings(values);
  await setupBackend(choice, log);
  const { result } = await runTraining(settings);
  return result.stopped ? 130 : 0;
}

/** Flags → settings. With --resume, run.json in --out supplies every flag not given. */
async function resolveSettings(values: Record<string, string | boolean | undefined>): Promise<TrainSettings> {
  const out = resolve(stringValue(values, 'out') ?? 'ferrogpt-out');
  const resume = values.resume === true;
  let saved: Partial<TrainSettings> = {};
  if (resume) {
    const runPath = join(out, 'run.json');
    if (!existsSync(runPath)) throw new UsageError(`--resume: ${out} holds no run to resume (no run.json); start one with --data`);
    saved = JSON.parse(await readFile(runPath, 'utf8')) as Partial<TrainSettings>;
  }
  const data = stringValue(values, 'data') ?? saved.data;
  if (data === undefined) throw new UsageError('--data is required (a text file or a folder of .txt files)');
  const tokenizer = stringValue(values, 'tokenizer') ?? saved.tokenizer ?? 'char';
  if (!/^(char|gpt2|bpe:\d+)$/.test(tokenizer)) throw new UsageError(`--tokenizer must be char, gpt2 or bpe:N (e.g. bpe:4096), got ${JSON.stringify(tokenizer)}`);
  if (tokenizer.startsWith('bpe:') && Number(tokenizer.slice(4)) < 257) throw new UsageError(`--tokenizer bpe:N needs N >= 257 (256 bytes + end-of-text), got ${tokenizer}`);
  const preset = choiceValue(values, 'preset', PRESET_NAMES) ?? saved.preset ?? 'tiny';
  const p = PRESETS[preset];
  const steps = intValue(values, 'steps', saved.steps ?? 2000, 1);
  const evalEvery = intValue(values, 'eval-every', saved.evalEvery ?? Math.max(1, Math.ceil(steps / 25)), 0);
  const settings: TrainSettings = {
    data: resolve(data),
    tokenizer,
    preset,
    out,
    steps,
    batch: intValue(values, 'batch', saved.batch ?? p.batch, 1),
    lr: numValue(values, 'lr', saved.lr ?? p.lr, 0),
    warmup: intValue(values, 'warmup', saved.warmup ?? Math.min(p.warmup, Math.floor(steps / 10)), 0),
    blockSize: intValue(values, 'block-size', saved.blockSize ?? p.model.blockSize, 1),
    dropout: numValue(values, 'dropout', saved.dropout ?? p.model.dropout ?? 0, 0, 0.99),
    evalEvery,
    checkpointEvery: intValue(values, 'checkpoint-every', saved.checkpointEvery ?? Math.max(evalEvery, Math.ceil(steps / 10)), 0),
    seed: intValue(values, 'seed', saved.seed ?? 1337, 0),
    resume,
    precision: choiceValue(values, 'precision', PRECISIONS) ?? saved.precision ?? 'f32',
  };
  if (settings.seed > 0xffffffff) throw new UsageError(`--seed must be below 2^32, got ${settings.seed}`);
  if (resume) {
    // These decide the token file and the model's shape: a checkpoint cannot continue with others.
    for (const k of ['data', 'tokenizer', 'preset', 'blockSize'] as const) {
      if (saved[k] !== undefined && saved[k] !== settings[k]) throw new UsageError(`--resume: the run in ${out} used ${k} ${JSON.stringify(saved[k])}, not ${JSON.stringify(settings[k])}`);
    }
  }
  return settings;
}

/** Builds the tokenizer a --tokenizer value names, from the training text. */
async function buildTokenizer(spec: string, data: string): Promise<Tokenizer> {
  if (spec === 'gpt2') return Tokenizer.gpt2();
  const files = (await listTextFiles(data)).map((f) => f.path);
  if (spec === 'char') return Tokenizer.train(files, { type: 'char' });
  return Tokenizer.train(files, { type: 'bpe', vocabSize: Number(spec.slice(4)) });
}

/**
 * The run itself (shared with `ferrogpt demo`). `plan`, if given, is called with the model
 * before training and may change the step count and evaluation interval (the demo sizes its
 * run to a time budget); `deadline` (ms, Date.now() clock) stops the run when reached.
 */
export async function runTraining(
  s: TrainSettings,
  hooks: { plan?: (model: GPT) => Promise<Partial<Pick<TrainSettings, 'steps' | 'evalEvery' | 'checkpointEvery' | 'warmup'>>> | void; deadline?: number } = {},
): Promise<TrainOutcome> {
  const ckptDir = join(s.out, 'checkpoint');
  const found = s.resume ? await findCheckpoint(ckptDir) : null;
  if (s.resume && found === null) throw new Error(`--resume: no checkpoint in ${ckptDir}`);

  if (!s.resume && (await findCheckpoint(ckptDir)) !== null) log(`note       starting afresh: the checkpoint in ${ckptDir} will be replaced (--resume continues it)`);

  // ---- tokenizer ----
  let t = performance.now();
  const tokenizer = found !== null && existsSync(join(found, 'tokenizer.json')) ? await Tokenizer.load(join(found, 'tokenizer.json')) : await buildTokenizer(s.tokenizer, s.data);
  log(`tokenizer  ${s.tokenizer}: ${tokenizer.vocabSize} ids (${Math.round(performance.now() - t)} ms)`);

  // ---- data ----
  t = performance.now();
  const prepared = await prepareData(s.data, { tokenizer, out: join(s.out, 'tokens.bin') });
  const dataset = TokenDataset.open(prepared.path);
  log(
    `data       ${prepared.meta.files.length === 1 ? prepared.meta.files[0].path : `${prepared.meta.files.length} files`}: ` +
      `${prepared.meta.count.toLocaleString('en-US')} tokens (train ${dataset.trainTokens.toLocaleString('en-US')}, val ${dataset.valTokens.toLocaleString('en-US')})` +
      (prepared.rebuilt ? ` (${Math.round(performance.now() - t)} ms)` : ' (cached)'),
  );
  if (dataset.trainTokens < s.blockSize + 1) {
    dataset.close();
    throw new Error(`the training split has ${dataset.trainTokens} tokens, fewer than --block-size + 1 = ${s.blockSize + 1}: use more text or a smaller --block-size`);
  }

  // ---- model ----
  const p = PRESETS[s.preset];
  const config: GPTConfigInput = { ...p.model, vocabSize: tokenizer.vocabSize, blockSize: s.blockSize, dropout: s.dropout, seed: s.seed };
  const model = found !== null ? await GPT.load(found) : GPT.create(config);
  const c = model.config;
  log(`model      ${s.preset}: ${c.nLayer} layers, ${c.nHead} heads, ${c.nEmbd} channels, context ${c.blockSize}, ${(model.numParameters() / 1e6).toFixed(2)}M parameters`);

  try {
    Object.assign(s, (await hooks.plan?.(model)) ?? {});
    await writeFileAtomic(join(s.out, 'run.json'), JSON.stringify({ ...s, resume: undefined }, null, 2) + '\n');

    // ---- loss history (losses.json keeps a resumed run's curve whole) ----
    const history = s.resume ? await readHistory(join(s.out, 'losses.json')) : { train: [], val: [] };
    let startStep = -1;
    const saveHistory = async (upTo: number): Promise<void> => {
      const keep = (p: LossPoint) => p.step <= upTo;
      await writeFileAtomic(join(s.out, 'losses.json'), JSON.stringify({ train: history.train.filter(keep), val: history.val.filter(keep) }) + '\n');
    };

    // ---- stop: Ctrl-C (after the current update, saving), or the demo's deadline ----
    const controller = new AbortController();
    let progress: Progress | null = null;
    const say = (m: string) => (progress ? progress.log(m) : log(m));
    let interrupts = 0;
    const onSigint = (): void => {
      if (++interrupts > 1) process.exit(130);
      say('stopping after this update and saving (Ctrl-C again to quit without saving)');
      controller.abort();
    };
    process.on('SIGINT', onSigint);
    let outOfTime = false;
    const timer = hooks.deadline === undefined ? null : setTimeout(() => ((outOfTime = true), controller.abort()), Math.max(0, hooks.deadline - Date.now()));

    log(`training   ${s.steps} updates of ${s.batch}×${c.blockSize} tokens, lr ${s.lr}, warmup ${s.warmup}, eval every ${s.evalEvery || 'end'}; out ${s.out}`);
    let result: TrainResult;
    try {
      result = await train({
        model,
        data: dataset,
        steps: s.steps,
        batchSize: s.batch,
        blockSize: c.blockSize,
        lr: s.lr,
        warmup: s.warmup,
        evalEvery: s.evalEvery,
        seed: s.seed,
        precision: s.precision,
        checkpointDir: ckptDir,
        checkpointEvery: s.checkpointEvery,
        resume: s.resume,
        tokenizer,
        signal: controller.signal,
        onStep: async (info) => {
          if (startStep < 0) {
            startStep = info.step - 1;
            // Drop what a killed run logged past its last checkpoint: those steps run again.
            history.train = history.train.filter((q) => q.step <= startStep);
            history.val = history.val.filter((q) => q.step <= startStep);
            // Created at the first update (only then is the start step known), so it back-dates
            // its clock by that update's time for the ETA.
            progress = new Progress({ total: s.steps, start: startStep, startedAt: performance.now() - (s.batch * c.blockSize * 1000) / info.tokensPerSec });
          }
          history.train.push({ step: info.step, loss: info.loss });
          if (info.valLoss !== undefined) history.val.push({ step: info.step, loss: info.valLoss });
          progress!.update(info);
          // train() checkpoints right after this callback on these steps: the log must cover them.
          if (s.checkpointEvery > 0 && info.step % s.checkpointEvery === 0) await saveHistory(info.step);
          if (hooks.deadline !== undefined && Date.now() >= hooks.deadline) {
            outOfTime = true;
            controller.abort();
          }
          // train()'s loop only awaits promises that are already resolved, so without this
          // the event loop would never run between updates: Ctrl-C (a signal handler) and
          // timers would wait for the next checkpoint's file I/O.
          await new Promise<void>((r) => setImmediate(r));
        },
      });
    } finally {
      process.off('SIGINT', onSigint);
      if (timer) clearTimeout(timer);
      (progress as Progress | null)?.finish();
      dataset.close();
    }

    // ---- the final model, the curves ----
    await saveHistory(result.step);
    await model.save(s.out);
    await tokenizer.save(join(s.out, 'tokenizer.json'));
    const svg = join(s.out, 'loss.svg');
    await writeFileAtomic(svg, lossCurveSvg(history.train, history.val, `ferrogpt ${s.preset} · ${s.tokenizer} · ${basenameOf(s.data)}`));

    const ran = result.step - result.startStep;
    const summary = [
      `${!result.stopped ? 'done' : outOfTime ? 'out of time' : 'stopped'} at step ${result.step}/${s.steps} (${ran} updates in ${formatDuration(result.elapsedMs / 1000)})`,
      `train loss ${Number.isNaN(result.finalLoss) ? '-' : result.finalLoss.toFixed(4)}`,
      result.valLoss === null ? null : `val loss ${result.valLoss.toFixed(4)}`,
    ].filter((x) => x !== null);
    log(summary.join(', '));
    log(`model      ${s.out}/{config.json, model.safetensors, tokenizer.json}`);
    log(`loss curve ${svg}`);
    if (result.stopped && !outOfTime) log(`resume     ferrogpt train --out ${s.out} --resume`);
    return { model, tokenizer, result, out: s.out, svg };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

async function readHistory(path: string): Promise<{ train: LossPoint[]; val: LossPoint[] }> {
  try {
    const h = JSON.parse(await readFile(path, 'utf8')) as { train?: LossPoint[]; val?: LossPoint[] };
    return { train: Array.isArray(h.train) ? h.train : [], val: Array.isArray(h.val) ? h.val : [] };
  } catch {
    return { train: [], val: [] }; // no curve yet: the resumed part is still drawn
  }
}

function basenameOf(path: string): string {
  return path.split(/[\\/]/).filter(Boolean).pop() ?? path;
}
