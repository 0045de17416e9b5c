// loss.svg: training and validation loss against the step, written by hand (no plotting
// dependency). Axes with "nice" ticks (1, 2, 5 × 10^k), labels, a legend; the train curve
// is averaged into at most ~600 points so long runs stay small files.

export interface LossPoint {
  step: number;
  loss: number;
}

const W = 720;
const H = 440;
const M = { left: 64, right: 24, top: 40, bottom: 52 };
const TRAIN_COLOR = '#1f77b4';
const VAL_COLOR = '#ff7f0e';

/** Evenly spaced round tick values covering [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(6)));
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Averages consecutive points into buckets so that at most `max` remain. */
function downsample(points: readonly LossPoint[], max: number): LossPoint[] {
  if (points.length <= max) return [...points];
  const size = Math.ceil(points.length / max);
  const out: LossPoint[] = [];
  for (let i = 0; i < points.length; i += size) {
    const chunk = points.slice(i, i + size);
    out.push({ step: chunk.reduce((s, p) => s + p.step, 0) / chunk.length, loss: chunk.reduce((s, p) => s + p.loss, 0) / chunk.length });
  }
  return out;
}

/** The SVG document (a string) of the loss curves. */
export function lossCurveSvg(train: readonly LossPoint[], val: readonly LossPoint[], title = 'ferrogpt training loss'): string {
  const finite = (p: LossPoint) => Number.isFinite(p.loss) && Number.isFinite(p.step);
  const tr = downsample(train.filter(finite), 600);
  const va = val.filter(finite);
  const all = [...tr, ...va];
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const parts: string[] = [];
  parts.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">${esc(title)}</text>`);

  const xMin = all.length ? Math.min(...all.map((p) => p.step)) : 0;
  const xMax0 = all.length ? Math.max(...all.map((p) => p.step)) : 1;
  const xMax = xMax0 > xMin ? xMax0 : xMin + 1;
  let yMin = all.length ? Math.min(...all.map((p) => p.loss)) : 0;
  let yMax = all.length ? Math.max(...all.map((p) => p.loss)) : 1;
  if (!(yMax > yMin)) [yMin, yMax] = [yMin - 0.5, yMax + 0.5];
  const pad = (yMax - yMin) * 0.05;
  yMin = Math.max(0, yMin - pad); // losses are >= 0
  yMax += pad;
  const x = (s: number) => M.left + ((s - xMin) / (xMax - xMin)) * pw;
  const y = (l: number) => M.top + (1 - (l - yMin) / (yMax - yMin)) * ph;

  // grid, ticks and tick labels
  parts.push(`<g stroke="#e5e5e5" stroke-width="1">`);
  const yTicks = niceTicks(yMin, yMax, 6).filter((t) => t >= yMin && t <= yMax);
  const xTicks = niceTicks(xMin, xMax, 8).filter((t) => t >= xMin && t <= xMax);
  for (const t of yTicks) parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}"/>`);
  for (const t of xTicks) parts.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${M.top}" y2="${M.top + ph}"/>`);
  parts.push(`</g>`);
  parts.push(`<g stroke="#333333" stroke-width="1">`);
  parts.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}"/>`);
  parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${M.top + ph}" y2="${M.top + ph}"/>`);
  for (const t of yTicks) parts.push(`<line x1="${M.left - 5}" x2="${M.left}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}"/>`);
  for (const t of xTicks) parts.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${M.top + ph}" y2="${M.top + ph + 5}"/>`);
  parts.push(`</g>`);
  parts.push(`<g fill="#333333">`);
  for (const t of yTicks) parts.push(`<text x="${M.left - 8}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${fmt(t)}</text>`);
  for (const t of xTicks) parts.push(`<text x="${x(t).toFixed(1)}" y="${M.top + ph + 19}" text-anchor="middle">${fmt(t)}</text>`);
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle" font-size="13">step</text>`);
  parts.push(`<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="13">loss (cross-entropy, nats)</text>`);
  parts.push(`</g>`);

  // curves
  const path = (pts: readonly LossPoint[]) => pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' ');
  if (tr.length > 0) parts.push(`<path d="${path(tr)}" fill="none" stroke="${TRAIN_COLOR}" stroke-width="1.5" stroke-linejoin="round"><title>train loss</title></path>`);
  if (va.length > 0) {
    parts.push(`<path d="${path(va)}" fill="none" stroke="${VAL_COLOR}" stroke-width="2" stroke-linejoin="round"><title>validation loss</title></path>`);
    for (const p of va) parts.push(`<circle cx="${x(p.step).toFixed(1)}" cy="${y(p.loss).toFixed(1)}" r="3" fill="${VAL_COLOR}"><title>step ${p.step}: val ${p.loss.toFixed(4)}</title></circle>`);
  }
  if (all.length === 0) parts.push(`<text x="${M.left + pw / 2}" y="${M.top + ph / 2}" text-anchor="middle" fill="#888888">no steps yet</text>`);

  // legend (top right, inside the plot)
  const lx = M.left + pw - 150;
  const ly = M.top + 12;
  parts.push(`<g font-size="12">`);
  parts.push(`<rect x="${lx - 10}" y="${ly - 12}" width="150" height="${va.length ? 44 : 26}" fill="#ffffff" fill-opacity="0.85" stroke="#cccccc"/>`);
  parts.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${TRAIN_COLOR}" stroke-width="2"/><text x="${lx + 32}" y="${ly + 4}">train${tr.length ? ` (last ${train[train.length - 1].loss.toFixed(3)})` : ''}</text>`);
  if (va.length) {
    parts.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly + 18}" y2="${ly + 18}" stroke="${VAL_COLOR}" stroke-width="2"/><circle cx="${lx + 12}" cy="${ly + 18}" r="3" fill="${VAL_COLOR}"/><text x="${lx + 32}" y="${ly + 22}">val (last ${va[va.length - 1].loss.toFixed(3)})</text>`);
  }
  parts.push(`</g>`);
  parts.push(`</svg>`);
  return parts.join('\n') + '\n';
}
