// Learning-rate schedules as pure functions of the step (0-based: the number of updates
// done before the one the rate is for).
//
//   warmup:  step < warmupSteps  →  maxLr · (step + 1) / warmupSteps     (linear, never 0)
//   then, with progress r = (step - warmupSteps) / (totalSteps - warmupSteps) in [0, 1]:
//     constant: maxLr
//     linear:   maxLr - r · (maxLr - minLr)
//     cosine:   minLr + ½ (1 + cos(π r)) (maxLr - minLr)
//   step >= totalSteps  →  minLr (linear, cosine)
//
// GPT-1 pre-training: cosine, warmup 2000, maxLr 2.5e-4; fine-tuning: linear, warmup 0.2%
// of the updates, minLr 0.

export type ScheduleKind = 'constant' | 'linear' | 'cosine';

export interface ScheduleOptions {
  kind: ScheduleKind;
  maxLr: number;
  /** Updates of linear warmup from ~0 to maxLr (default 0). */
  warmupSteps?: number;
  /** Updates at which the decay reaches minLr (linear, cosine). */
  totalSteps?: number;
  /** Floor of the decay (default 0). */
  minLr?: number;
}

/** The learning rate for update `step` (0-based). */
export function learningRate(step: number, options: ScheduleOptions): number {
  const { kind, maxLr, warmupSteps = 0, totalSteps, minLr = 0 } = options;
  if (!Number.isInteger(step) || step < 0) throw new Error(`learningRate: step must be an integer >= 0, got ${step}`);
  if (!(maxLr >= 0) || !Number.isFinite(maxLr)) throw new Error(`learningRate: maxLr must be a finite number >= 0, got ${maxLr}`);
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new Error(`learningRate: warmupSteps must be an integer >= 0, got ${warmupSteps}`);
  if (!(minLr >= 0) || minLr > maxLr) throw new Error(`learningRate: minLr must be in [0, maxLr], got ${minLr}`);
  if (step < warmupSteps) return (maxLr * (step + 1)) / warmupSteps;
  if (kind === 'constant') return maxLr;
  if (kind !== 'linear' && kind !== 'cosine') throw new Error(`learningRate: unknown schedule kind ${JSON.stringify(kind)}`);
  if (totalSteps === undefined || !Number.isInteger(totalSteps) || totalSteps < warmupSteps) {
    throw new Error(`learningRate: a ${kind} schedule needs totalSteps, an integer >= warmupSteps (${warmupSteps}), got ${totalSteps}`);
  }
  if (step >= totalSteps) return minLr;
  const r = (step - warmupSteps) / (totalSteps - warmupSteps);
  if (kind === 'linear') return maxLr - r * (maxLr - minLr);
  return minLr + 0.5 * (1 + Math.cos(Math.PI * r)) * (maxLr - minLr);
}

export const constantSchedule = (step: number, maxLr: number, warmupSteps = 0): number =>
  learningRate(step, { kind: 'constant', maxLr, warmupSteps });

export const linearSchedule = (step: number, maxLr: number, totalSteps: number, warmupSteps = 0, minLr = 0): number =>
  learningRate(step, { kind: 'linear', maxLr, totalSteps, warmupSteps, minLr });

export const cosineSchedule = (step: number, maxLr: number, totalSteps: number, warmupSteps = 0, minLr = 0): number =>
  learningRate(step, { kind: 'cosine', maxLr, totalSteps, warmupSteps, minLr });

/** A schedule bound to its options: step → learning rate. */
export function makeSchedule(options: ScheduleOptions): (step: number) => number {
  learningRate(options.warmupSteps ?? 0, options); // validate now (past warmup, so every option is read)
  return (step) => learningRate(step, options);
}
