// Checkpoints (src/train/checkpoint.ts): exact resume and crash safety.
//
// EXACT RESUME: 20 updates in one run == 10 updates, checkpoint, a fresh model resumed from
// it for 10 more: the losses compare with ===, and the two final checkpoints are the same
// bytes. Dropout is on and gradAccum is 2, so the dropout counter (model.trainingSteps),
// the sampler state and the optimizer moments all have to come back exactly.
// KILL TEST: a child process trains and checkpoints; it is SIGKILLed while writing a
// checkpoint (1) paused at each dangerous point of the save by a test hook, and (2) at
// random moments, several times in a row. Every time the last good checkpoint loads, and
// the resumed run gives exactly the losses of an uninterrupted one.
// FINETUNE: the same format and writer. A run stopped mid-epoch and resumed on a fresh model,
// and a child killed at each dangerous point of a mid-epoch save and resumed, end with the
// losses, validation history and checkpoint bytes (model + head weights, both AdamW states,
// trainer.json) of an uninterrupted run; restoring the head's dropout counter matters.

import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { writeSafetensorsFile } from '../src/io/safetensors.js';
import { GPT } from '../src/model/gpt.js';
import { FineTunedGPT } from '../src/tasks/finetuned.js';
import { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { findCheckpoint, loadCheckpoint, loadTaskCheckpoint } from '../src/train/checkpoint.js';
import { TokenDataset, prepareData } from '../src/train/data.js';
import { finetune, type FineTuneOptions, type FineTuneResult } from '../src/train/finetune.js';
import { train, type TrainOptions } from '../src/train/train.js';
import { describeEachBackend } from './helpers/backends.js';
import { classificationTask } from './helpers/synthetic-tasks.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHILD = fileURLToPath(new URL('./helpers/kill-during-checkpoint.mjs', import.meta.url));
const corpus = (await readFile(join(ROOT, 'data/corpus.txt'), 'utf8')).slice(0, 20_000);
const tok = Tokenizer.trainFromTexts([corpus], { type: 'char' });
const config = { vocabSize: tok.vocabSize, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32, dropout: 0.1, seed: 5 };
// Cosine with warmup, accumulation, clipping, evaluation: every piece of loop state.
const hyper = { batchSize: 4, gradAccum: 2, lr: 5e-3, minLr: 5e-4, warmup: 3, schedule: 'cosine', gradClip: 1, evalEvery: 5, evalBatches: 1, seed: 9 } as const;

let dir: string;
let tokenFile: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferrogpt-ckpt-'));
  await writeFile(join(dir, 'corpus.txt'), corpus);
  tokenFile = join(dir, 'tokens.bin');
  await prepareData(join(dir, 'corpus.txt'), { tokenizer: tok, out: tokenFile });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Losses by step (1-based), from onStep. */
async function runLosses(backend: Backend, opts: Omit<TrainOptions, 'model'>, model = GPT.create(config, backend)): Promise<{ model: GPT; losses: Map<number, number>; val: Map<number, number> }> {
  const losses = new Map<number, number>();
  const val = new Map<number, number>();
  await train({
    ...hyper,
    ...opts,
    model,
    onStep: (s) => {
      losses.set(s.step, s.loss);
      if (s.valLoss !== undefined) val.set(s.step, s.valLoss);
    },
  });
  return { model, losses, val };
}

/** Asserts a and b hold the same steps with bit-identical (===) losses. */
function expectSameLosses(a: Map<number, number>, b: Map<number, number>, steps: number[]): void {
  for (const s of steps) {
    expect(a.has(s) && b.has(s), `step ${s} present`).toBe(true);
    // === on the doubles (Object.is also tells -0 from 0 and matches NaN, neither expected).
    expect(Object.is(a.get(s), b.get(s)), `step ${s}: ${a.get(s)} vs ${b.get(s)}`).toBe(true);
  }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describeEachBackend(
  'exact resume',
  (backend) => {
    it('20 steps in one run == 10 steps, checkpoint, fresh model, 10 more (bit for bit)', async () => {
      const data = TokenDataset.open(tokenFile);
      try {
        const full = await runLosses(backend, { data, steps: 20, checkpointDir: join(dir, `${backend.name}-full`), checkpointEvery: 10 });
        expect(full.losses.size).toBe(20);

        // Run 2 is interrupted after step 10 (the schedule is still that of 20 steps).
        const splitDir = join(dir, `${backend.name}-split`);
        const ac = new AbortController();
        const part1 = new Map<number, number>();
        const m1 = GPT.create(config, backend);
        const r1 = await train({
          ...hyper,
          model: m1,
          data,
          steps: 20,
          checkpointDir: splitDir,
          checkpointEvery: 10,
          signal: ac.signal,
          onStep: (s) => {
            part1.set(s.step, s.loss);
            if (s.step === 10) ac.abort();
          },
        });
        expect(r1).toMatchObject({ step: 10, stopped: true });
        expectSameLosses(part1, full.losses, range(1, 10));
        m1.dispose();

        // A fresh model (its weights and dropout counter are replaced by the checkpoint's).
        const fresh = GPT.create({ ...config }, backend);
        expect(fresh.trainingSteps).toBe(0);
        const resumed = await runLosses(backend, { data, steps: 20, checkpointDir: splitDir, checkpointEvery: 10, resume: true }, fresh);
        expect([...resumed.losses.keys()]).toEqual(range(11, 20));
        expectSameLosses(resumed.losses, full.losses, range(11, 20));
        expectSameLosses(resumed.val, full.val, [15, 20]);
        expect(fresh.trainingSteps).toBe(20 * hyper.gradAccum);

        // The two step-20 checkpoints are the same bytes.
        for (const f of ['model.safetensors', 'optimizer.safetensors', 'config.json']) {
          expect(Buffer.compare(await readFile(join(splitDir, f)), await readFile(join(dir, `${backend.name}-full`, f))), f).toBe(0);
        }
        const trainerA = JSON.parse(await readFile(join(splitDir, 'trainer.json'), 'utf8'));
        const trainerB = JSON.parse(await readFile(join(dir, `${backend.name}-full`, 'trainer.json'), 'utf8'));
        expect(trainerA).toEqual(trainerB);
        expect(trainerA).toMatchObject({ step: 20, trainingSteps: 40, sampler: { seed: hyper.seed, drawn: 20 * hyper.batchSize * hyper.gradAccum } });
        for (const m of [full.model, fresh]) m.dispose();
      } finally {
        data.close();
      }
    });

    it('the restored dropout counter matters (negative control)', async () => {
      const data = TokenDataset.open(tokenFile);
      try {
        const ckdir = join(dir, `${backend.name}-control`);
        const base = await runLosses(backend, { data, steps: 6, checkpointDir: ckdir, checkpointEvery: 3 });
        // Step 3's checkpoint is gone (replaced by step 6's); make one at 3 again.
        const again = join(dir, `${backend.name}-control3`);
        const ac = new AbortController();
        const m = GPT.create(config, backend);
        await train({ ...hyper, model: m, data, steps: 6, checkpointDir: again, signal: ac.signal, onStep: (s) => void (s.step === 3 && ac.abort()) });
        m.dispose();
        const trainerPath = join(again, 'trainer.json');
        const trainer = JSON.parse(await readFile(trainerPath, 'utf8'));
        trainer.trainingSteps = 0; // as if the counter were not saved
        await writeFile(trainerPath, JSON.stringify(trainer));
        const wrong = await runLosses(backend, { data, steps: 6, checkpointDir: again, resume: true });
        expect(wrong.losses.get(4)).not.toBe(base.losses.get(4));
        for (const x of [base.model, wrong.model]) x.dispose();
      } finally {
        data.close();
      }
    });
  },
  ['native', 'reference'],
);

describeEachBackend(
  'checkpoint files',
  (backend) => {
    it('loads with validation and clear errors; falls back to .old; the next save repairs', async () => {
      const data = TokenDataset.open(tokenFile);
      const ckdir = join(dir, 'validate', 'ckpt');
      const { model } = await runLosses(backend, { data, steps: 2, checkpointDir: ckdir, tokenizer: tok });
      data.close();

      const loaded = await loadCheckpoint(ckdir, { backend });
      expect(loaded.dir).toBe(ckdir);
      expect(loaded.trainer.step).toBe(2);
      expect(loaded.optimizer.step).toBe(2);
      expect(loaded.model.trainingSteps).toBe(4);
      expect(loaded.model.namedParameters()[0][1].data()).toEqual(model.namedParameters()[0][1].data());
      expect((await Tokenizer.load(ckdir)).encode('Mr. Darcy')).toEqual(tok.encode('Mr. Darcy'));
      // GPT.load reads the checkpoint folder as it is.
      expect((await GPT.load(ckdir, backend)).namedParameters()[1][1].data()).toEqual(model.namedParameters()[1][1].data());

      const other = GPT.create({ ...config, nLayer: 1 }, backend);
      await expect(loadCheckpoint(ckdir, { model: other })).rejects.toThrow(/different model: nLayer 2 vs 1/);
      const drop = GPT.create({ ...config, dropout: 0 }, backend);
      await expect(loadCheckpoint(ckdir, { model: drop })).rejects.toThrow(/dropout 0.1 vs 0/);
      await expect(loadCheckpoint(join(dir, 'nothing-here'))).rejects.toThrow(/no checkpoint at/);

      // Killed between the renames: only ckpt.old is there; it loads, and the next save
      // puts things back in order.
      await rename(ckdir, `${ckdir}.old`);
      expect(await findCheckpoint(ckdir)).toBe(`${ckdir}.old`);
      expect((await loadCheckpoint(ckdir, { backend })).trainer.step).toBe(2);
      const data2 = TokenDataset.open(tokenFile);
      await runLosses(backend, { data: data2, steps: 3, checkpointDir: ckdir, resume: true }, model);
      await expect(runLosses(backend, { data: TokenDataset.fromTokens([1, 2, 3, ...tok.encode(corpus.slice(0, 500))], { vocabSize: tok.vocabSize }), steps: 4, checkpointDir: ckdir, resume: true })).rejects.toThrow(/different data/);
      data2.close();
      expect((await readdir(join(dir, 'validate'))).sort()).toEqual(['ckpt']);

      // Killed after the new checkpoint was in place but before the old one was removed,
      // at the run's last save: resuming finds nothing left to do (no save) and still
      // leaves only ckpt behind.
      await cp(ckdir, `${ckdir}.old`, { recursive: true });
      await mkdir(`${ckdir}.tmp-1-abc`);
      const data3 = TokenDataset.open(tokenFile);
      const done = await runLosses(backend, { data: data3, steps: 3, checkpointDir: ckdir, resume: true }, model);
      data3.close();
      expect(done.losses.size).toBe(0);
      expect((await readdir(join(dir, 'validate'))).sort()).toEqual(['ckpt']);

      // Damaged optimizer state: wrong shape, then truncated.
      const P = model.numParameters();
      const opt = join(ckdir, 'optimizer.safetensors');
      const good = await readFile(opt);
      await writeSafetensorsFile(opt, { m: { shape: [P - 1], data: new Float32Array(P - 1) }, v: { shape: [P], data: new Float32Array(P) } }, { step: '3' });
      await expect(loadCheckpoint(ckdir, { backend })).rejects.toThrow(/optimizer.safetensors.*\n.*tensor 'm' has shape \[\d+\], expected/);
      await writeFile(opt, good.subarray(0, good.length - 8));
      await expect(loadCheckpoint(ckdir, { backend })).rejects.toThrow(/optimizer.safetensors/);
      await writeFile(join(ckdir, 'trainer.json'), '{"format":"something else"}');
      await expect(loadCheckpoint(ckdir, { backend })).rejects.toThrow(/trainer.json is not a ferrogpt-checkpoint/);
      for (const m of [model, loaded.model, other, drop]) m.dispose();
    });
  },
  ['native'],
);

// ---------------------------------------------------------------- the kill test

interface ChildRun {
  losses: Map<number, number>;
  stderr: string;
  killedAt: string | null; // the pause line it was killed at
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Runs the child trainer. With `pauseAt` it is killed when it announces that pause; with
 * `killAfterMs` it is killed that long after its first step; else it runs to the end.
 */
function runChild(backendName: string, ckdir: string, steps: number, opts: { pauseAt?: string; killAfterMs?: number; checkpointEvery: number }): Promise<ChildRun> {
  const args = { backend: backendName, config, data: tokenFile, train: { ...hyper, steps, checkpointDir: ckdir, checkpointEvery: opts.checkpointEvery } };
  return spawnChild(args, opts);
}

/** Runs kill-during-checkpoint.child.ts with `args` (train's or finetune's, see there); killed as runChild says. */
function spawnChild(args: object, opts: { pauseAt?: string; killAfterMs?: number }): Promise<ChildRun> {
  const env = { ...process.env };
  if (opts.pauseAt) {
    env.FERROGPT_TEST_CHECKPOINT_PAUSE_MS = '60000';
    env.FERROGPT_TEST_CHECKPOINT_PAUSE_AT = opts.pauseAt;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(args)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const run: ChildRun = { losses: new Map(), stderr: '', killedAt: null, code: null, signal: null };
    const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
    let out = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        const { step, loss } = JSON.parse(line) as { step: number; loss: number };
        run.losses.set(step, loss);
        if (opts.killAfterMs !== undefined && timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      run.stderr += d.toString();
      const m = /ferrogpt-test: checkpoint pause (\w+) (\d+)/.exec(run.stderr);
      if (m && run.killedAt === null) {
        run.killedAt = m[0];
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      run.code = code;
      run.signal = signal;
      resolve(run);
    });
  });
}

describeEachBackend(
  'kill during checkpoint',
  (backend) => {
    let reference: Map<number, number>;
    beforeAll(async () => {
      const data = TokenDataset.open(tokenFile);
      const r = await runLosses(backend, { data, steps: 40 });
      reference = r.losses;
      r.model.dispose();
      data.close();
    });

    it.each([
      // Half-written temp directory: the old checkpoint is untouched.
      ['tmp', 'ckpt'],
      // Old checkpoint renamed away, new one not yet in place: only ckpt.old is readable.
      ['swap', 'ckpt.old'],
    ])('SIGKILL at the %s point of a save: the previous checkpoint loads and resumes exactly', async (phase, survivor) => {
      const parent = await mkdtemp(join(dir, `kill-${phase}-`));
      const ckdir = join(parent, 'ckpt');
      const steps = 40; // as the reference run: the schedule depends on it
      // Checkpoints at 2, 4, 6, ...; killed while saving step 6's.
      const run = await runChild(backend.name, ckdir, steps, { pauseAt: `${phase}@6`, checkpointEvery: 2 });
      expect(run.killedAt, run.stderr).toBe(`ferrogpt-test: checkpoint pause ${phase} 6`);
      expect(run.signal).toBe('SIGKILL');
      // The child computed exactly what this process computes.
      expectSameLosses(run.losses, reference, range(1, 6));

      const entries = (await readdir(parent)).sort();
      expect(entries.some((e) => e.startsWith('ckpt.tmp-'))).toBe(true); // the interrupted write
      expect(entries.includes(survivor)).toBe(true);
      expect(await findCheckpoint(ckdir)).toBe(join(parent, survivor));
      const ck = await loadCheckpoint(ckdir, { backend });
      expect(ck.trainer.step).toBe(4);
      ck.model.dispose();

      // Resume (in this process) and finish: steps 5..12 equal the uninterrupted run.
      const data = TokenDataset.open(tokenFile);
      const resumed = await runLosses(backend, { data, steps, checkpointDir: ckdir, checkpointEvery: 2, resume: true });
      data.close();
      expect([...resumed.losses.keys()]).toEqual(range(5, steps));
      expectSameLosses(resumed.losses, reference, range(5, steps));
      expect(await readdir(parent)).toEqual(['ckpt']); // the next save cleaned up
      resumed.model.dispose();
    });

    it('SIGKILL at random moments, again and again: every restart resumes, the losses equal an uninterrupted run', async () => {
      const parent = await mkdtemp(join(dir, 'kill-random-'));
      const ckdir = join(parent, 'ckpt');
      const steps = 40;
      const seen = new Map<number, number>();
      let kills = 0;
      // A checkpoint after every step (each save takes tens of ms, with its fsyncs), so
      // most moments are inside a save. The delays are fixed, not Math.random, so that a
      // failure can be replayed; they land at different points of different saves.
      const delays = [120, 35, 260, 90, 180];
      for (const delay of delays) {
        const run = await runChild(backend.name, ckdir, steps, { killAfterMs: delay, checkpointEvery: 1 });
        for (const [s, l] of run.losses) {
          if (seen.has(s)) expect(Object.is(seen.get(s), l), `step ${s} recomputed after a kill`).toBe(true);
          seen.set(s, l);
        }
        if (run.signal !== 'SIGKILL') {
          expect(run.code, run.stderr).toBe(0);
          break; // finished before the kill
        }
        kills++;
        // Whatever moment it died at, a checkpoint is readable (once the first save is done).
        const found = await findCheckpoint(ckdir);
        if (found !== null) {
          const ck = await loadCheckpoint(ckdir, { backend });
          expect(ck.trainer.step).toBeGreaterThanOrEqual(1);
          ck.model.dispose();
        }
      }
      expect(kills).toBeGreaterThanOrEqual(3);
      // Finish without kills.
      const last = await runChild(backend.name, ckdir, steps, { checkpointEvery: 1 });
      expect(last.code, last.stderr).toBe(0);
      for (const [s, l] of last.losses) seen.set(s, l);
      expectSameLosses(seen, reference, range(1, steps));
      expect(await readdir(parent)).toEqual(['ckpt']);
    });
  },
  ['native'],
);

// ---------------------------------------------------------------- finetune: exact resume, kill test

const FT_TEXT = 'abcdefghx';
const ftTok = Tokenizer.trainFromTexts([FT_TEXT], { type: 'char' });
const ftConfig = { vocabSize: ftTok.vocabSize, blockSize: 24, nLayer: 2, nHead: 2, nEmbd: 16, seed: 7 };
// 26 examples in batches of 4: 7 updates an epoch (the last one of 2 examples), 3 epochs = 21
// updates. Checkpoints every 3 updates and at the ends of epochs: 3 6 7 9 12 14 15 18 21.
// Dropout (model and classifier) on, λ > 0 (L1 too), warmup then linear decay, validation.
const ftOptions = {
  task: { type: 'classification' as const, train: classificationTask(26, 51), validation: classificationTask(8, 52) },
  epochs: 3, batchSize: 4, lr: 3e-3, warmup: 3, lambda: 0.5, dropout: 0.1, clfDropout: 0.1, seed: 9, checkpointEvery: 3,
};
const FT_STEPS = 21;
const CKPT_FILES = ['model.safetensors', 'optimizer.safetensors', 'config.json', 'task.json', 'tokenizer.json'];

/** A fine-tuning run from a fresh base model (stopped after update `stopAt` if given); losses by step from onStep. */
async function ftRun(backend: Backend, opts: Partial<FineTuneOptions>, stopAt?: number): Promise<{ r: FineTuneResult; losses: Map<number, number> }> {
  const base = GPT.create(ftConfig, backend);
  const losses = new Map<number, number>();
  const ac = new AbortController();
  try {
    const r = await finetune({
      ...ftOptions, ...opts, model: base, tokenizer: ftTok, signal: ac.signal,
      onStep: (s) => {
        losses.set(s.step, s.loss);
        if (s.step === stopAt) ac.abort();
      },
    });
    return { r, losses };
  } finally {
    base.dispose(); // finetune rebuilt it (task tokens, dropout): the result has its own
  }
}

/** The checkpoints at a and b are the same bytes (and equal trainer.json). */
async function expectSameCheckpoint(a: string, b: string): Promise<void> {
  for (const f of CKPT_FILES) expect(Buffer.compare(await readFile(join(a, f)), await readFile(join(b, f))), f).toBe(0);
  expect(JSON.parse(await readFile(join(a, 'trainer.json'), 'utf8'))).toEqual(JSON.parse(await readFile(join(b, 'trainer.json'), 'utf8')));
}

/** Every weight of the model and of the head is bit-identical. */
function expectSameWeights(a: FineTunedGPT, b: FineTunedGPT): void {
  const pb = b.model.namedParameters();
  a.model.namedParameters().forEach(([name, p], i) => expect(Buffer.compare(Buffer.from(p.data().buffer), Buffer.from(pb[i][1].data().buffer)), name).toBe(0));
  const hb = b.head.namedParameters();
  a.head.namedParameters().forEach(([name, w], i) => expect(Buffer.compare(Buffer.from(w.buffer, w.byteOffset, w.byteLength), Buffer.from(hb[i][1].buffer, hb[i][1].byteOffset, hb[i][1].byteLength)), name).toBe(0));
}

/** Per backend: the uninterrupted run every resumed one must equal (with its final checkpoint). */
const ftReference = new Map<string, Promise<{ r: FineTuneResult; losses: Map<number, number>; dir: string }>>();
function ftFull(backend: Backend): Promise<{ r: FineTuneResult; losses: Map<number, number>; dir: string }> {
  if (!ftReference.has(backend.name)) {
    const ckdir = join(dir, `ft-${backend.name}-full`);
    ftReference.set(backend.name, ftRun(backend, { checkpointDir: ckdir }).then((x) => ({ ...x, dir: ckdir })));
  }
  return ftReference.get(backend.name)!;
}
afterAll(async () => {
  for (const p of ftReference.values()) (await p).r.model.dispose();
});

describeEachBackend(
  'finetune: exact resume',
  (backend) => {
    it('stopped mid-epoch (step 9 of 21), resumed on a fresh model: the same losses, history, weights and checkpoint bytes', async () => {
      const full = await ftFull(backend);
      expect(full.r).toMatchObject({ steps: FT_STEPS, startStep: 0, stopped: false });
      expect(full.r.history.map((h) => [h.epoch, h.step])).toEqual([[1, 7], [2, 14], [3, 21]]);

      // Stopped after step 9: epoch 2, its second batch; step 9 is also a checkpointEvery step.
      const stopDir = join(dir, `ft-${backend.name}-stop`);
      const part = await ftRun(backend, { checkpointDir: stopDir }, 9);
      expect(part.r).toMatchObject({ steps: 9, startStep: 0, stopped: true });
      expectSameLosses(part.losses, full.losses, range(1, 9));
      expect(JSON.parse(await readFile(join(stopDir, 'trainer.json'), 'utf8'))).toMatchObject({ verb: 'finetune', step: 9, trainingSteps: 9, headSteps: 9 });
      part.r.model.dispose();

      const resumed = await ftRun(backend, { checkpointDir: stopDir, resume: true });
      expect(resumed.r).toMatchObject({ steps: FT_STEPS, startStep: 9, stopped: false });
      expect([...resumed.losses.keys()]).toEqual(range(10, FT_STEPS));
      expectSameLosses(resumed.losses, full.losses, range(10, FT_STEPS));
      expect(resumed.r.losses).toEqual(full.r.losses.slice(9));
      expect(resumed.r.history).toEqual(full.r.history); // epoch 1's comes from the checkpoint
      expect(resumed.r.validation).toEqual(full.r.validation);
      expect(resumed.r.model.model.trainingSteps).toBe(FT_STEPS);
      expect(resumed.r.model.headSteps).toBe(FT_STEPS);
      expectSameWeights(resumed.r.model, full.r.model);
      await expectSameCheckpoint(stopDir, full.dir);
      // The checkpoint is a fine-tuned model folder too.
      const loaded = await FineTunedGPT.load(stopDir, backend);
      expectSameWeights(loaded, full.r.model);
      loaded.dispose();
      resumed.r.model.dispose();
    });

    it('the restored head dropout counter matters (negative control); a resume checks what it continues', async () => {
      const full = await ftFull(backend);
      const ckdir = join(dir, `ft-${backend.name}-control`);
      (await ftRun(backend, { checkpointDir: ckdir }, 4)).r.model.dispose();
      const trainerPath = join(ckdir, 'trainer.json');
      const good = await readFile(trainerPath, 'utf8');
      await writeFile(trainerPath, JSON.stringify({ ...JSON.parse(good), headSteps: 0 })); // as if it were not saved
      const wrong = await ftRun(backend, { checkpointDir: ckdir, resume: true }, 5);
      expect(wrong.losses.get(5)).not.toBe(full.losses.get(5));
      wrong.r.model.dispose();

      await writeFile(trainerPath, good);
      await expect(ftRun(backend, { checkpointDir: ckdir, resume: true, batchSize: 5 })).rejects.toThrow(/written with batchSize 4, not 5: the epoch orders would differ/);
      await expect(ftRun(backend, { checkpointDir: ckdir, resume: true, seed: 10 })).rejects.toThrow(/written with seed 9, not 10/);
      await expect(ftRun(backend, { checkpointDir: ckdir, resume: true, task: { ...ftOptions.task, train: classificationTask(26, 53) } })).rejects.toThrow(/trained on other examples/);
      await expect(ftRun(backend, { checkpointDir: ckdir, resume: true, dropout: 0 })).rejects.toThrow(/different model: dropout 0.1 vs 0/);
      await expect(ftRun(backend, { checkpointDir: ckdir, resume: true, clfDropout: 0.2 })).rejects.toThrow(/task.json differs from the task being fine-tuned in clfDropout/);
      await expect(ftRun(backend, { resume: true })).rejects.toThrow(/finetune: resume needs checkpointDir/);
      await expect(ftRun(backend, { checkpointDir: join(dir, 'ft-nothing'), resume: true })).rejects.toThrow(/no checkpoint at/);
      // 'auto' without a checkpoint starts afresh.
      const fresh = await ftRun(backend, { checkpointDir: join(dir, `ft-${backend.name}-auto`), resume: 'auto' }, 2);
      expectSameLosses(fresh.losses, full.losses, [1, 2]);
      fresh.r.model.dispose();
      // The two verbs' checkpoints are told apart.
      await expect(loadCheckpoint(ckdir, { backend })).rejects.toThrow(/it is a finetune checkpoint/);
      const trainDir = join(dir, `ft-${backend.name}-a-train-checkpoint`);
      const data = TokenDataset.open(tokenFile);
      (await runLosses(backend, { data, steps: 1, checkpointDir: trainDir })).model.dispose();
      data.close();
      const ft = (await ftRun(backend, {}, 1)).r.model;
      await expect(loadTaskCheckpoint(trainDir, ft)).rejects.toThrow(/it is a train \(pre-training\) checkpoint, not a finetune one/);
      ft.dispose();
    });
  },
  ['native', 'reference'],
);

describeEachBackend(
  'finetune: kill during checkpoint',
  (backend) => {
    it.each([
      ['tmp', 'ckpt'],
      ['swap', 'ckpt.old'],
    ])('SIGKILL at the %s point of a mid-epoch save: the previous checkpoint resumes, bit for bit', async (phase, survivor) => {
      const full = await ftFull(backend);
      const parent = await mkdtemp(join(dir, `ft-kill-${phase}-`));
      const ckdir = join(parent, 'ckpt');
      // Checkpoints at 3 6 7 9 12 ...; killed while saving step 12's (epoch 2, its 5th batch).
      const { task, ...opts } = ftOptions;
      const args = { verb: 'finetune', backend: backend.name, config: ftConfig, tokenizerText: FT_TEXT, finetune: { ...opts, task, checkpointDir: ckdir } };
      const run = await spawnChild(args, { pauseAt: `${phase}@12` });
      expect(run.killedAt, run.stderr).toBe(`ferrogpt-test: checkpoint pause ${phase} 12`);
      expect(run.signal).toBe('SIGKILL');
      expectSameLosses(run.losses, full.losses, range(1, 12)); // the child computes what this process does

      const entries = (await readdir(parent)).sort();
      expect(entries.some((e) => e.startsWith('ckpt.tmp-'))).toBe(true); // the interrupted write
      expect(entries.includes(survivor)).toBe(true);
      expect(await findCheckpoint(ckdir)).toBe(join(parent, survivor));
      expect(JSON.parse(await readFile(join(parent, survivor, 'trainer.json'), 'utf8')).step).toBe(9); // mid-epoch 2

      const resumed = await ftRun(backend, { checkpointDir: ckdir, resume: true });
      expect([...resumed.losses.keys()]).toEqual(range(10, FT_STEPS));
      expectSameLosses(resumed.losses, full.losses, range(10, FT_STEPS));
      expect(resumed.r.history).toEqual(full.r.history);
      expectSameWeights(resumed.r.model, full.r.model);
      await expectSameCheckpoint(ckdir, full.dir);
      expect(await readdir(parent)).toEqual(['ckpt']); // the next save cleaned up
      resumed.r.model.dispose();
    });
  },
  ['native'],
);
