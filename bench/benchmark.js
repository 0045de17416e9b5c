#!/usr/bin/env node
// ferrogpt benchmarks. Usage:
//   node bench/benchmark.js kernels [--quick] [--threads N] [--ref-cap SECONDS] [--full-transb] [--no-install] [--only matmul|attention]
//   (npm run bench:kernels)
//   node bench/benchmark.js train|quality ...   → bench/suites/train.js main(argv) (npm run bench:train / bench:quality)
//   node bench/benchmark.js finetune ...        → bench/suites/finetune.js main(argv) (npm run bench:finetune)
//   node bench/benchmark.js generate|prompting ... → bench/suites/<name>.js main(argv) (npm run bench:generate / bench:prompting)
//   node bench/benchmark.js browser ...         → bench/suites/browser.js main(argv) (npm run bench:browser)
//   node bench/benchmark.js compact ...         → bench/suites/compact.js main(argv) (npm run bench:compact)
// Prints as it goes and writes bench/results/<suite>.json (git-ignored) and <suite>.md.
//
// ferrogpt is loaded from the compiled library (dist/, `npm run build:ts`) and the prebuilt
// addon / wasm module in bindings/; the kernels and generate suites use the addon's
// benchmark build instead (bench/.native/, built here by `npm run build:native:bench` when
// missing or older than the Rust sources; --no-install: never built here). Peers (onnxruntime-node, tfjs-backend-wasm) live in
// bench/peers/, a package of their own, installed on first run with
// `npm ci --ignore-scripts --prefix bench/peers` (onnxruntime-node's postinstall downloads
// from the network and fails here; its npm package already ships the linux-x64 CPU binaries).

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBenchAddon } from './lib/bench-addon.js';
import { loadFerrogpt, nativeThreads } from './lib/ferrogpt.js';
import { benchmarkVersion } from './lib/timing.js';
import { renderKernels } from './lib/report.js';

const here = dirname(fileURLToPath(import.meta.url));
// FERROGPT_BENCH_ROOT: benchmark another checkout/build of ferrogpt (its dist/ and bindings/).
const root = process.env.FERROGPT_BENCH_ROOT ?? join(here, '..');

function parseArgs(argv) {
  const a = { suite: 'kernels', quick: false, threads: null, refCapS: 120, fullTransB: false, install: true };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === '--quick') a.quick = true;
    else if (s === '--threads') a.threads = Number(argv[++i]);
    else if (s === '--ref-cap') a.refCapS = Number(argv[++i]);
    else if (s === '--full-transb') a.fullTransB = true;
    else if (s === '--no-install') a.install = false;
    else if (s === '--only') a.only = argv[++i];
    else if (s === '-h' || s === '--help') {
      console.log('usage: node bench/benchmark.js kernels [--quick] [--threads N] [--ref-cap SECONDS] [--full-transb] [--no-install] [--only matmul|attention]');
      process.exit(0);
    } else if (!s.startsWith('-')) a.suite = s;
    else throw new Error(`unknown option ${s}`);
  }
  return a;
}

function ensurePeers(install, log) {
  const peersDir = join(here, 'peers');
  const need = ['onnxruntime-node', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm'];
  if (need.every((p) => existsSync(join(peersDir, 'node_modules', p, 'package.json')))) return;
  if (!install) return;
  log('installing benchmark peers: npm ci --ignore-scripts --prefix bench/peers');
  const r = spawnSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', peersDir], { stdio: 'inherit' });
  if (r.status !== 0) log(`peer install failed (exit ${r.status}); peer rows will say n/a`);
}

async function loadPeers(nThreads) {
  const peers = { ort: null, tfjs: null, tfjsInfo: null, versions: {}, errors: {} };
  try {
    peers.ort = await import('./peers/ort.js');
    peers.versions.onnxruntimeNode = peers.ort.ortVersion;
  } catch (e) {
    peers.errors.ort = e.message.split('\n')[0];
  }
  try {
    peers.tfjs = await import('./peers/tfjs.js');
    peers.tfjsInfo = await peers.tfjs.initTfjs(nThreads);
    peers.versions.tfjsBackendWasm = peers.tfjs.tfjsVersion;
  } catch (e) {
    peers.tfjs = null;
    peers.errors.tfjs = e.message.split('\n')[0];
  }
  return peers;
}

function gitCommit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null;
  }
}

function safeInfo(b) {
  try {
    return b ? b.info() : null;
  } catch (e) {
    return { error: e.message };
  }
}

async function main() {
  // The training suites (bench/suites/train.js: train, quality) parse their own options.
  if (['train', 'quality'].includes(process.argv[2])) return (await import('./suites/train.js')).main(process.argv.slice(2));
  // Fine-tuning on real data (bench/suites/finetune.js) parses its own options too.
  if (process.argv[2] === 'finetune') return (await import('./suites/finetune.js')).main(process.argv.slice(3));
  // The prompting suites (bench/suites/generate.js, prompting.js) parse their own options;
  // generate's roofline uses the addon's memoryBandwidth probe (the bench build).
  if (process.argv[2] === 'generate') {
    ensureBenchAddon(root, { build: !process.argv.includes('--no-install') });
    return (await import('./suites/generate.js')).main(process.argv.slice(2).filter((s) => s !== '--no-install'));
  }
  if (process.argv[2] === 'prompting') return (await import('./suites/prompting.js')).main(process.argv.slice(2));
  // Compact weights: quality (perplexity, greedy agreement) and resident memory (bench/suites/compact.js).
  if (process.argv[2] === 'compact') return (await import('./suites/compact.js')).main(process.argv.slice(2));
  // The wasm backend in Chromium and in Node, next to onnxruntime-web and tfjs-wasm (bench/suites/browser.js).
  if (process.argv[2] === 'browser') return (await import('./suites/browser.js')).main(process.argv.slice(2));
  const args = parseArgs(process.argv.slice(2));
  if (args.suite !== 'kernels') throw new Error(`unknown suite "${args.suite}" (available: kernels, train, quality, finetune, generate, prompting, compact, browser)`);
  const log = (s) => console.log(s);
  const started = Date.now();
  const nThreads = args.threads ?? (os.availableParallelism?.() ?? os.cpus().length);

  ensurePeers(args.install, log);
  // peakGflops and attentionScratchBytes are in the addon's bench build only.
  const benchAddon = ensureBenchAddon(root, { build: args.install, log });
  const fg = await loadFerrogpt(root);
  const peers = await loadPeers(nThreads);

  const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const env = {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism?.() ?? os.cpus().length,
    threadsUsed: nThreads,
    platform: `${process.platform}-${process.arch}`,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    ferrogpt: rootPkg.version,
    commit: gitCommit(),
    simd: fg.addon && typeof fg.addon.simdName === 'function' ? fg.addon.simdName() : null,
    native: safeInfo(fg.native),
    nativeThreadsDefault: fg.native || fg.addon ? nativeThreads(fg) : null,
    wasm: safeInfo(fg.wasm),
    reference: safeInfo(fg.reference),
    addonLoadedVia: fg.addonHow ? `${fg.addonHow.kind} ${relative(root, fg.addonHow.file)}` : null,
    benchAddon: benchAddon ? relative(root, benchAddon) : null,
    unavailable: fg.errors,
    peers: { ...peers.versions, tfjsWasm: peers.tfjsInfo, errors: peers.errors },
    benchmarkJs: benchmarkVersion,
    loadAverageStart: os.loadavg().map((x) => +x.toFixed(2)),
    quick: args.quick,
  };
  log(`ferrogpt ${env.ferrogpt} (${env.commit ?? 'no git'})  ${env.cpu}  ${env.cores} cores  node ${env.node}  ${env.platform}`);
  log(`native: ${env.native ? JSON.stringify(env.native) : `n/a (${fg.errors.native ?? fg.errors.addon})`}  simd: ${env.simd ?? 'n/a'}`);
  log(`wasm: ${env.wasm ? JSON.stringify(env.wasm) : `n/a (${fg.errors.wasm})`}`);
  log(`reference: ${env.reference ? 'yes' : `n/a (${fg.errors.reference})`}`);
  log(`peers: onnxruntime-node ${peers.versions.onnxruntimeNode ?? `n/a (${peers.errors.ort})`}; tfjs-backend-wasm ${peers.versions.tfjsBackendWasm ?? `n/a (${peers.errors.tfjs})`}${peers.tfjsInfo ? ` (${peers.tfjsInfo.threads} thread(s), simd ${peers.tfjsInfo.simd}, multithread ${peers.tfjsInfo.multithread})` : ''}`);
  log(`load average at start: ${env.loadAverageStart.join(' ')} (anything near or above ${env.cores} means other work competes for the cores)`);

  const suite = await import('./suites/kernels.js');
  const results = await suite.run({ fg, peers, root, quick: args.quick, log, nThreads, refCapS: args.refCapS, fullTransB: args.fullTransB, only: args.only });
  env.loadAverageEnd = os.loadavg().map((x) => +x.toFixed(2));
  env.wallSeconds = +((Date.now() - started) / 1e3).toFixed(1);

  if (env.loadAverageStart[0] > env.cores * 0.5) results.notes.push(`The load average was ${env.loadAverageStart[0]} on ${env.cores} cores at the start: other processes shared the cores, so absolute numbers are low and ratios noisy. Rerun on an idle machine.`);
  const doc = { suite: 'kernels', env, ...results };
  const outDir = join(here, 'results');
  mkdirSync(outDir, { recursive: true });
  const md = renderKernels(doc);
  log('');
  log(md);
  // A --quick or --only run must not replace the committed table: JSON only, under another name.
  const partial = args.quick || args.only;
  const jsonPath = join(outDir, partial ? 'kernels.partial.json' : 'kernels.json');
  writeFileSync(jsonPath, JSON.stringify(doc, null, 2) + '\n');
  if (!partial) writeFileSync(join(outDir, 'kernels.md'), md);
  const rel = (p) => relative(process.cwd(), p);
  log(`wrote ${rel(jsonPath)}${partial ? ' (partial run: kernels.md left as it was)' : ` and ${rel(join(outDir, 'kernels.md'))}`} in ${env.wallSeconds} s`);
  // ORT / tfjs may keep handles open; the results are written.
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
