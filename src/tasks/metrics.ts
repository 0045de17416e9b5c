// Evaluation metrics of fine-tuned tasks: accuracy for every classification (and multiple
// choice), F1 of the positive class for binary classification, Pearson and Spearman
// correlation for scored similarity (GLUE's STS-B metrics), plus the mean squared error.

export interface TaskMetrics {
  /** Examples evaluated. */
  count: number;
  /** Fraction predicted right (classification, entailment, similarity classes, choice). */
  accuracy?: number;
  /** F1 of the positive class (the second label) for two-class tasks. */
  f1?: number;
  /** Regression: Pearson's r, Spearman's ρ, mean squared error. */
  pearson?: number;
  spearman?: number;
  mse?: number;
  /** Mean L2 (cross-entropy or MSE) over the examples. */
  loss?: number;
}

export function accuracy(pred: ArrayLike<number>, gold: ArrayLike<number>): number {
  checkSame(pred, gold);
  let right = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === gold[i]) right++;
  return pred.length === 0 ? NaN : right / pred.length;
}

/** F1 = 2·P·R / (P + R) of class `positive`; 0 when it is never predicted right. */
export function f1Score(pred: ArrayLike<number>, gold: ArrayLike<number>, positive = 1): number {
  checkSame(pred, gold);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < pred.length; i++) {
    if (pred[i] === positive && gold[i] === positive) tp++;
    else if (pred[i] === positive) fp++;
    else if (gold[i] === positive) fn++;
  }
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/** Pearson's correlation coefficient (NaN when either side is constant). */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkSame(x, y);
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx === 0 || syy === 0 ? NaN : sxy / Math.sqrt(sxx * syy);
}

/** Ranks from 1, ties sharing their mean rank (as scipy.stats.rankdata 'average'). */
export function ranks(x: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: x.length }, (_, i) => i).sort((a, b) => x[a] - x[b]);
  const r = new Float64Array(x.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && x[order[j + 1]] === x[order[i]]) j++;
    const mean = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[order[k]] = mean;
    i = j + 1;
  }
  return r;
}

/** Spearman's ρ: Pearson of the ranks. */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return pearson(ranks(x), ranks(y));
}

export function meanSquaredError(pred: ArrayLike<number>, gold: ArrayLike<number>): number {
  checkSame(pred, gold);
  let s = 0;
  for (let i = 0; i < pred.length; i++) s += (pred[i] - gold[i]) ** 2;
  return s / pred.length;
}

function checkSame(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new Error(`metrics: ${a.length} predictions for ${b.length} gold values`);
}
