// Training progress on stderr. On a terminal: one live line, redrawn in place,
//
//   step  412/2000 ━━━━━━━━━━╸───────────────────  21% │ loss 1.8421 │ val 1.9310 │ 41.2k tok/s │ ETA 1:52
//
// Elsewhere (CI logs, pipes): plain lines, about twenty per run plus one per evaluation, so
// a log shows the run's shape without a line per step.

import type { StepInfo } from '../train/train.js';

export interface ProgressOptions {
  /** Updates the run ends at (a resumed run counts from its checkpoint). */
  total: number;
  /** Step the run starts from (0, or the checkpoint's). */
  start?: number;
  stream?: NodeJS.WriteStream;
  /** Force the live bar on or off (default: whether the stream is a TTY). */
  tty?: boolean;
  /** performance.now() when the first update of this run began (default: now). */
  startedAt?: number;
}

export class Progress {
  private readonly total: number;
  private readonly start: number;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly every: number;
  private readonly t0: number;
  private lastDraw = 0;
  private drawn = false; // a live line is on screen
  private tokPerSec = 0; // smoothed
  private valLoss: number | null = null;
  private last: StepInfo | null = null;

  constructor(options: ProgressOptions) {
    this.total = options.total;
    this.start = options.start ?? 0;
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.every = Math.max(1, Math.round((this.total - this.start) / 20));
    this.t0 = options.startedAt ?? performance.now();
  }

  update(info: StepInfo): void {
    this.last = info;
    // tokens/s of one step is noisy (GC, an evaluation): an exponential average reads steadily.
    this.tokPerSec = this.tokPerSec === 0 ? info.tokensPerSec : 0.9 * this.tokPerSec + 0.1 * info.tokensPerSec;
    if (info.valLoss !== undefined) this.valLoss = info.valLoss;
    const now = performance.now();
    const lastStep = info.step >= this.total;
    if (this.tty) {
      // Redraw at most ~12 times a second: a terminal write per step would cost more than a tiny model's step.
      if (lastStep || info.valLoss !== undefined || now - this.lastDraw > 80) {
        this.lastDraw = now;
        this.draw(this.line(info, this.columns()));
      }
    } else if (info.step === this.start + 1 || info.step % this.every === 0 || info.valLoss !== undefined || lastStep) {
      this.stream.write(this.line(info, 0) + '\n');
    }
  }

  /** Prints a message above the live line (which is then redrawn). */
  log(message: string): void {
    if (this.tty && this.drawn) this.stream.write('\r\x1b[2K');
    this.stream.write(message + '\n');
    if (this.tty && this.last) this.draw(this.line(this.last, this.columns()));
  }

  /** Leaves the last state on screen and moves to a new line. */
  finish(): void {
    if (this.tty && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  private draw(line: string): void {
    this.stream.write('\r\x1b[2K' + line);
    this.drawn = true;
  }

  private columns(): number {
    return this.stream.columns || 100;
  }

  /** The status line; `width` > 0 fits it (and sizes the bar) to a terminal of that width. */
  line(info: StepInfo, width: number): string {
    const digits = String(this.total).length;
    const stepText = `step ${String(info.step).padStart(digits)}/${this.total}`;
    const pct = `${String(Math.floor((100 * info.step) / Math.max(this.total, 1))).padStart(3)}%`;
    const fields = [`loss ${info.loss.toFixed(4)}`];
    if (this.valLoss !== null) fields.push(`val ${this.valLoss.toFixed(4)}`);
    fields.push(`${formatRate(this.tokPerSec)} tok/s`);
    const done = info.step - this.start;
    const elapsed = (performance.now() - this.t0) / 1000;
    if (info.step >= this.total) fields.push(`${formatDuration(elapsed)} total`);
    else if (done > 0) fields.push(`ETA ${formatDuration((elapsed / done) * (this.total - info.step))}`);
    const tail = `${pct} │ ${fields.join(' │ ')}`;
    if (width <= 0) return `${stepText} ${tail.replace(/│/g, '|')}`;
    const barWidth = Math.min(40, width - stepText.length - tail.length - 3);
    // Never wrap: \r only rewinds one row. With a bar the line fits by construction (the
    // bar's colour codes take no columns); without one, cut it.
    if (barWidth >= 10) return `${stepText} ${bar(info.step / Math.max(this.total, 1), barWidth)} ${tail}`;
    const out = `${stepText} ${tail}`;
    return out.length > width - 1 ? out.slice(0, width - 1) : out;
  }
}

/** A bar of `width` cells, filled to `fraction`, with a half cell for sub-cell progress. */
export function bar(fraction: number, width: number, color = !process.env.NO_COLOR): string {
  const f = Math.min(1, Math.max(0, fraction)) * width;
  const full = Math.floor(f);
  const half = full < width && f - full >= 0.5 ? 1 : 0;
  const [on, dim, off] = color ? ['\x1b[36m', '\x1b[2m', '\x1b[0m'] : ['', '', ''];
  return on + '━'.repeat(full) + (half ? '╸' : '') + dim + '─'.repeat(width - full - half) + off;
}

export function formatRate(perSec: number): string {
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)}M`;
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)}k`;
  return perSec.toFixed(0);
}

/** 75 → "1:15", 3725 → "1:02:05". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
