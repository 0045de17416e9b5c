// A/B of two ferrogpt builds on the training step, in one process: both builds' dist/ and
// addons are loaded side by side, each trains an identical model, and their steps are
// interleaved (the order alternating every round), so that both see the same load on the
// machine. Prints each side's median step and the median of the per-round ratios A/B.
// On a shared 2-core VM separate runs drift by ±5%; the paired ratio resolves 2-3%.
// Run it with the same build on both sides first: that shows the noise floor (about ±2%),
// and swap A and B for a second run: a bias of 1-2% toward one side remains.
//
//   node bench/ab.js <rootA> <rootB> [--config nano|gpt2] [--steps N] [--threads T]
//
// A root is a checkout with its builds done (npm run build:native && npm run build:ts),
// e.g. a `git worktree` of the commit to compare against.

import { CONFIGS, ferroStep, loadLib, makeModel, randomBatches } from './suites/train.js';
import { median } from './lib/util.js';

function parseArgs(argv) {
  const a = { roots: [], config: 'nano', steps: 200, threads: 1 };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === '--config') a.config = argv[++i];
    else if (s === '--steps') a.steps = Number(argv[++i]);
    else if (s === '--threads') a.threads = Number(argv[++i]);
    else if (s.startsWith('-')) throw new Error(`unknown option ${s}`);
    else a.roots.push(s);
  }
  if (a.roots.length !== 2) throw new Error('usage: node bench/ab.js <rootA> <rootB> [--config nano|gpt2] [--steps N] [--threads T]');
  if (!CONFIGS[a.config]) throw new Error(`unknown config ${a.config} (available: ${Object.keys(CONFIGS).join(', ')})`);
  if (!(Number.isInteger(a.steps) && a.steps >= 1)) throw new Error(`--steps must be a positive integer, got ${a.steps}`);
  return a;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const cfg = CONFIGS[args.config];
  const { batch: B } = cfg;
  const { blockSize: T, vocabSize: V } = cfg.model;
  const sides = [];
  for (const root of args.roots) {
    const lib = await loadLib(root);
    lib.backend.setThreads(args.threads);
    sides.push({ root, lib, ...makeModel(lib, cfg), times: [] });
  }
  const [{ ids, targets }] = randomBatches(1, B, T, V, 1);
  const warmup = Math.min(cfg.warmup, 3);
  for (let i = 0; i < warmup + args.steps; i++) {
    for (const s of i % 2 ? sides : [...sides].reverse()) {
      const t0 = performance.now();
      ferroStep(s.lib, s.model, s.opt, ids, targets, B, T);
      if (i >= warmup) s.times.push(performance.now() - t0);
    }
  }
  const [a, b] = sides;
  const ratio = median(a.times.map((t, i) => t / b.times[i]));
  console.log(`${cfg.name}, ${args.threads} thread(s), ${args.steps} steps each`);
  for (const [name, s] of [['A', a], ['B', b]]) console.log(`  ${name} ${s.root}: median step ${median(s.times).toFixed(2)} ms`);
  console.log(`  median of paired ratios A/B: ${ratio.toFixed(3)} (> 1: B is faster)`);
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
