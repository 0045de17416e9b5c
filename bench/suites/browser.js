// Suite "browser": ferrogpt's wasm backend where it is meant to run, in a Chromium page,
// per variant (relaxed-simd-threads, simd128-threads, simd128, scalar) at 1 and 2 threads,
// next to onnxruntime-web (wasm EP, SIMD + threads) and tfjs-backend-wasm (threaded SIMD
// build) in the same page; and the same ferrogpt figures in Node, in the same invocation.
//
//   node bench/benchmark.js browser [--quick] [--threads 1,2] [--no-node] [--no-peers] [--no-install] [--wait-idle S] [--settle MS] [--today DIR | --no-today] [--shapes MxKxN,...] [--only matmul|train|decode]
//   (npm run bench:browser)
//
// How:
//   1. bench/browser/ (index.html + page.js) is bundled with vite from the compiled library
//      (dist/, npm run build:ts) into a temporary folder, as an app would bundle ferrogpt.
//   2. A node:http server on 127.0.0.1 serves it with Cross-Origin-Opener-Policy: same-origin
//      and Cross-Origin-Embedder-Policy: require-corp, so the page is crossOriginIsolated
//      (SharedArrayBuffer, wasm threads), and the peers' dist/ folders under /peers/.
//   3. Debian's Chromium, through playwright-core (launchPersistentContext, headless, the
//      flags of test/browser.test.ts), opens one fresh page per thread count (the peers'
//      thread counts can be set once per page) and runs window.bench.run there.
//   4. Node: bench/lib/wasm-node-child.js in a child `node --experimental-wasm-relaxed-simd`
//      (Node 20 has relaxed SIMD behind that flag), after the browser is closed, so the two
//      never share the cores.
// The measurements themselves are bench/lib/wasm-bench.js, the same code on both sides.
// FERROGPT_JS_FLAGS=<V8 flags> is passed to Chromium as --js-flags, for diagnosis (the
// threaded builds' occasional slow 1-thread rows: bench/README.md).
// Before each page and the Node child it waits (up to --wait-idle S, default 120; 0 with
// --quick) until other processes leave the cores alone, and it records how much CPU they
// took during each phase (bench/lib/cpu-monitor.js): on a shared 2-core machine one busy
// neighbour halves a 2-thread figure, and the report has to say when that happened.
//
// Writes bench/results/browser.json (git-ignored) and bench/results/browser.md; a --quick
// run writes browser.partial.json only.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import os from 'node:os';
import { dirname, extname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderBrowser } from '../lib/report.js';
import { startCpuMonitor, waitIdle } from '../lib/cpu-monitor.js';
import { BASELINE_REF, ensureBaseline } from '../lib/baseline.js';
import { chromiumFacts, missingChromiumMessage } from '../../scripts/chromium.mjs';
import { NODE_STAND_INS } from '../../scripts/node-stand-ins.mjs';
import { errText } from '../lib/util.js';

const here = dirname(fileURLToPath(import.meta.url));
const benchDir = join(here, '..');
const root = process.env.FERROGPT_BENCH_ROOT ?? join(benchDir, '..');
const peersDir = join(benchDir, 'peers');
const PEERS = ['onnxruntime-web', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm'];
// test/browser.test.ts's flags.
const FLAGS = [...(process.env.FERROGPT_JS_FLAGS ? [`--js-flags=${process.env.FERROGPT_JS_FLAGS}`] : []), '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'];


function parse(argv) {
  const a = { quick: false, threads: [1, 2], node: true, peers: true, install: true, waitIdleS: null, settleMs: 0, today: true, todayRoot: null, shapes: null, only: null };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === 'browser') continue;
    if (s === '--quick') a.quick = true;
    else if (s === '--threads') a.threads = String(argv[++i]).split(',').map(Number);
    else if (s === '--no-node') a.node = false;
    else if (s === '--no-peers') a.peers = false;
    else if (s === '--no-install') a.install = false;
    else if (s === '--wait-idle') a.waitIdleS = Number(argv[++i]);
    else if (s === '--settle') a.settleMs = Number(argv[++i]);
    else if (s === '--no-today') a.today = false;
    else if (s === '--shapes') a.shapes = String(argv[++i]).split(',').map((x) => x.split('x').map(Number));
    else if (s === '--only') a.only = argv[++i];
    else if (s === '--today') a.todayRoot = argv[++i];
    else if (s === '-h' || s === '--help') {
      console.log('usage: node bench/benchmark.js browser [--quick] [--threads 1,2] [--no-node] [--no-peers] [--no-install] [--wait-idle SECONDS] [--settle MS] [--today DIR | --no-today] [--shapes MxKxN,...] [--only matmul|train|decode]');
      process.exit(0);
    } else throw new Error(`unknown option ${s}`);
  }
  a.waitIdleS ??= a.quick ? 0 : 120;
  if (a.shapes && a.shapes.some((sh) => sh.length !== 3 || sh.some((d) => !Number.isInteger(d) || d < 1))) throw new Error('--shapes: MxKxN[,MxKxN...]');
  if (a.only && !['matmul', 'train', 'decode'].includes(a.only)) throw new Error('--only: matmul, train or decode');
  a.parts = a.only ? { matmul: a.only === 'matmul', train: a.only === 'train', decode: a.only === 'decode' } : undefined;
  if (!a.threads.length || a.threads.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--threads: a list of positive integers, got ${a.threads.join(',')}`);
  return a;
}

function ensurePeers(install, log) {
  if (PEERS.every((p) => existsSync(join(peersDir, 'node_modules', p, 'package.json')))) return;
  if (!install) return;
  log('installing benchmark peers: npm ci --ignore-scripts --prefix bench/peers');
  const r = spawnSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', peersDir], { stdio: 'inherit' });
  if (r.status !== 0) log(`peer install failed (exit ${r.status}); peer rows will say n/a`);
}

const pkgVersion = (dir) => {
  try {
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
};

/**
 * Bundles bench/browser/ with vite into `outDir` (ferrogpt from dist/, node: modules → the
 * browser stand-ins; 'ferrogpt-today' → today's build's dist/ when there is one).
 */
async function buildPage(outDir, todayRoot) {
  const { build } = await import('vite');
  const standIn = join(root, 'dist/src/io/browser-node.js');
  const todayEntry = join(dirname(outDir), 'ferrogpt-today.js');
  const t = (rel) => JSON.stringify(join(todayRoot ?? '', 'dist', rel));
  writeFileSync(
    todayEntry,
    todayRoot
      ? `import * as index from ${t('src/index.js')};\nimport * as wasm from ${t('src/backend/wasm.js')};\nexport const today = { index, wasm };\n`
      : 'export const today = null;\n',
  );
  await build({
    configFile: false,
    root: join(benchDir, 'browser'),
    base: './',
    logLevel: 'error', // rolldown's chunking notes about dist/ are not ours to fix here
    resolve: { alias: [{ find: NODE_STAND_INS, replacement: standIn }, { find: /^ferrogpt-today$/, replacement: todayEntry }] },
    worker: { format: 'es' },
    build: { target: 'es2022', outDir, emptyOutDir: true, chunkSizeWarningLimit: 4096, reportCompressedSize: false },
  });
}

const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.map': 'application/json' };

/** Static files, crossOriginIsolated: `/` → site, `/peers/<name>/` → each peer's dist/. */
async function serve(site) {
  const mounts = [
    ['/peers/ort/', join(peersDir, 'node_modules/onnxruntime-web/dist')],
    ['/peers/tfjs-core/', join(peersDir, 'node_modules/@tensorflow/tfjs-core/dist')],
    ['/peers/tfjs-wasm/', join(peersDir, 'node_modules/@tensorflow/tfjs-backend-wasm/dist')],
    ['/', site],
  ];
  const requests = [];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    try {
      const [prefix, dir] = mounts.find(([p]) => path.startsWith(p));
      const file = normalize(join(dir, path.slice(prefix.length)));
      if (!file.startsWith(dir + sep)) throw new Error('outside');
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': MIME[extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
        'cross-origin-resource-policy': 'same-origin',
      });
      res.end(body);
      requests.push({ path, status: 200 });
    } catch {
      res.writeHead(404, { 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-opener-policy': 'same-origin' }).end('not found');
      requests.push({ path, status: 404 });
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, requests, port: server.address().port };
}

function chromiumVersion(path) {
  const r = spawnSync(path, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** One page per thread count; returns { pages: [...], chromium, errors }. */
async function runBrowser(args, log, mon) {
  const out = { pages: [], alonePages: [], errors: [] };
  const facts = chromiumFacts(root);
  if (!facts.installed) {
    out.errors.push(missingChromiumMessage(facts));
    return out;
  }
  out.chromium = { path: facts.path, version: chromiumVersion(facts.path) };
  const work = mkdtempSync(join(os.tmpdir(), 'ferrogpt-bench-browser-'));
  let srv = null;
  let context = null;
  try {
    const t0 = Date.now();
    await buildPage(join(work, 'site'), args.todayRoot);
    log(`page bundled with vite in ${((Date.now() - t0) / 1e3).toFixed(1)} s`);
    srv = await serve(join(work, 'site'));
    const { chromium } = await import('playwright-core');
    context = await chromium.launchPersistentContext(join(work, 'profile'), { executablePath: facts.path, headless: true, args: FLAGS });
    // Every Worker any script starts, recorded before the page's own scripts run.
    await context.addInitScript(() => {
      const Native = window.Worker;
      window.__workers = [];
      window.Worker = class extends Native {
        constructor(url, opts) {
          super(url, opts);
          window.__workers.push({ url: String(url).slice(0, 120), type: opts?.type ?? 'classic' });
        }
      };
    });
    const perPageS = args.quick ? 240 : 600;
    // The pages: each thread count with the peers (the comparison), then, when the peers
    // ran, each thread count with ferrogpt alone and matmul only: in a page where the peers'
    // thread pools also live, ferrogpt's 2-thread matmul has come out at its 1-thread rate on
    // some shapes, so the report shows both.
    const plans = args.threads.map((n) => ({ n, alone: false }));
    if (args.peers && !args.quick) plans.push(...args.threads.map((n) => ({ n, alone: true })));
    for (const { n, alone } of plans) {
      const name = `Chromium ${n}T page${alone ? ' (ferrogpt alone)' : ''}`;
      const w = await waitIdle(mon, { maxS: args.waitIdleS, log });
      mon.phase(name);
      const page = await context.newPage();
      await page.exposeFunction('__othersBetween', (t0, t1) => mon.othersBetween(t0, t1));
      await page.exposeFunction('__waitIdle', async (maxS) => (await waitIdle(mon, { maxS: args.waitIdleS > 0 ? maxS : 0, log })).idle);
      const problems = [];
      const tagP = `[page ${n}T${alone ? ' alone' : ''}]`;
      page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning' ? problems.push(`${m.type()}: ${m.text()}`) : log(`${tagP} ${m.text()}`)));
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      try {
        await page.goto(`http://127.0.0.1:${srv.port}/index.html`);
        await page.waitForFunction(() => window.benchReady === true, undefined, { timeout: 60_000 });
        const peersOn = args.peers && !alone;
        const cfg = { threads: n, quick: args.quick, settleMs: args.settleMs, today: !alone && n === 1, peers: { ort: peersOn, tfjs: peersOn }, parts: alone ? { ...args.parts, train: false, decode: false } : args.parts, shapes: args.shapes };
        const r = await Promise.race([
          page.evaluate((c) => window.bench.run(c), cfg),
          new Promise((_, rej) => setTimeout(() => rej(new Error(`the ${name} did not finish in ${perPageS} s`)), perPageS * 1e3)),
        ]);
        (alone ? out.alonePages : out.pages).push({ threads: n, ...r, consoleProblems: problems, waitedForIdle: w });
      } catch (e) {
        out.errors.push(`${name}: ${errText(e)}${problems.length ? ` (console: ${problems.slice(0, 3).join(' | ')})` : ''}`);
        log(`${name} failed: ${errText(e)}`);
        (alone ? out.alonePages : out.pages).push({ threads: n, error: errText(e), consoleProblems: problems });
      } finally {
        for (const p of problems) log(`${tagP} ${p}`);
        await page.close();
        mon.phase(null);
      }
    }
    out.http404 = [...new Set(srv.requests.filter((q) => q.status === 404).map((q) => q.path))];
  } catch (e) {
    out.errors.push(errText(e));
    log(`browser: ${errText(e)}`);
  } finally {
    await context?.close();
    if (srv) await new Promise((r) => srv.server.close(() => r()));
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}

/** ferrogpt's wasm backend in a child Node with relaxed SIMD enabled. */
function runNode(args, log) {
  const file = join(benchDir, 'lib/wasm-node-child.js');
  const flags = ['--experimental-wasm-relaxed-simd'];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...flags, file, JSON.stringify({ root, threads: args.threads, quick: args.quick, waitIdle: args.waitIdleS > 0, settleMs: args.settleMs, todayRoot: args.todayRoot, shapes: args.shapes, parts: args.parts })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      for (const line of String(d).trimEnd().split('\n')) log(`[node] ${line}`);
    });
    child.on('close', (code) => {
      if (code !== 0) return resolve({ error: `node child exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}` });
      try {
        resolve({ flags, ...JSON.parse(stdout.trim().split('\n').pop()) });
      } catch (e) {
        resolve({ error: `bad child output: ${stdout.slice(0, 200)}` });
      }
    });
  });
}

/** The browser pages merged into one result shaped like Node's: matmul rows per shape, train and decode rows. */
export function mergePages(pages) {
  const ok = pages.filter((p) => !p.error);
  const byShape = new Map();
  for (const p of ok) {
    for (const e of p.matmul ?? []) {
      const k = `${e.M}x${e.K}x${e.N}`;
      if (!byShape.has(k)) byShape.set(k, { M: e.M, K: e.K, N: e.N, gflop: e.gflop, rows: {} });
      Object.assign(byShape.get(k).rows, e.rows);
    }
  }
  const variants = {};
  for (const p of ok) for (const [v, info] of Object.entries(p.variants ?? {})) variants[`${v} (${p.threads}T page)`] = info;
  return {
    matmul: [...byShape.values()],
    train: ok.flatMap((p) => p.train ?? []),
    decode: ok.flatMap((p) => p.decode ?? []),
    variants,
    plan: ok[0]?.plan ?? null,
  };
}

const gf = (rows, label) => rows[label]?.gflops ?? null;
const div = (a, b) => (a != null && b != null && b > 0 ? a / b : null);
const geomean = (xs) => {
  const v = xs.filter((x) => x != null && x > 0);
  return v.length ? Math.exp(v.reduce((s, x) => s + Math.log(x), 0) / v.length) : null;
};

/**
 * The ratios the acceptance targets need, from one side's merged result (browser or node).
 * Per shape: relaxed-SIMD 1T over simd128 1T and over tfjs-wasm 1T; 2T over 1T per threaded
 * variant and per peer; ours (the best variant at that count) over onnxruntime-web at equal
 * threads. Training step and decode: each row against simd128 on one thread.
 */
export function ratios(side, VARIANTS, threads) {
  const best = (rows, n) => VARIANTS.map((v) => `${v} ${n}T`).find((l) => gf(rows, l) != null) ?? null;
  const shapes = side.matmul.map((e) => {
    const r = e.rows;
    const hiT = Math.max(...threads);
    const bestHi = best(r, hiT);
    const o = {
      shape: `${e.M}×${e.K}×${e.N}`,
      M: e.M,
      relaxedVsSimd128_1T: div(gf(r, 'relaxed-simd-threads 1T'), gf(r, 'simd128 1T')),
      relaxedVsTfjs_1T: div(gf(r, 'relaxed-simd-threads 1T'), gf(r, 'tfjs-wasm 1T')),
      relaxedVsToday_1T: div(gf(r, 'relaxed-simd-threads 1T'), gf(r, 'today-simd128 1T')),
      bestHiVsToday_1T: bestHi ? div(gf(r, bestHi), gf(r, 'today-simd128 1T')) : null,
      bestHi,
      scaling: {},
      vsOrt: {},
    };
    if (threads.length > 1) {
      const [lo, hi] = [Math.min(...threads), Math.max(...threads)];
      for (const name of ['relaxed-simd-threads', 'simd128-threads', 'ort-web', 'tfjs-wasm']) o.scaling[name] = div(gf(r, `${name} ${hi}T`), gf(r, `${name} ${lo}T`));
      o.scalingThreads = [lo, hi];
    }
    for (const n of threads) {
      const b = best(r, n);
      o.vsOrt[n] = { ours: b, ratio: b ? div(gf(r, b), gf(r, `ort-web ${n}T`)) : null };
    }
    return o;
  });
  const rows1024 = shapes.filter((s) => s.M === 1024);
  const summary = {
    relaxedVsSimd128_1T_geomean1024: geomean(rows1024.map((s) => s.relaxedVsSimd128_1T)),
    relaxedVsTfjs_1T_geomean1024: geomean(rows1024.map((s) => s.relaxedVsTfjs_1T)),
    relaxedVsToday_1T_geomean1024: geomean(rows1024.map((s) => s.relaxedVsToday_1T)),
    bestHiVsToday_1T_geomean1024: geomean(rows1024.map((s) => s.bestHiVsToday_1T)),
  };
  const base = (list, key, v = 'simd128') => list.find((x) => x.variant === v && x.threads === 1 && x[key] != null)?.[key] ?? null;
  const trainBase = base(side.train, 'median_ms');
  const decodeBase = base(side.decode, 'decodeTokPerS');
  const trainToday = base(side.train, 'median_ms', 'today-simd128');
  const decodeToday = base(side.decode, 'decodeTokPerS', 'today-simd128');
  const train = side.train.map((t) => ({ variant: t.variant, threads: t.threads, speedupVsSimd128_1T: div(trainBase, t.median_ms), speedupVsToday_1T: div(trainToday, t.median_ms) }));
  const decode = side.decode.map((t) => ({ variant: t.variant, threads: t.threads, vsSimd128_1T: div(t.decodeTokPerS, decodeBase), vsToday_1T: div(t.decodeTokPerS, decodeToday) }));
  return { shapes, summary, train, decode };
}

function gitCommit() {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) return null;
  const d = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' });
  return d.stdout.trim() ? `${r.stdout.trim()}+dirty` : r.stdout.trim();
}

export async function main(argv) {
  const args = parse(argv);
  const log = (s) => console.log(s);
  const started = Date.now();
  if (!existsSync(join(root, 'dist/src/index.js'))) throw new Error('dist/src/index.js not found: run npm run build:ts (the bench loads the compiled library)');
  if (args.peers) ensurePeers(args.install, log);
  // "Today's" build: the library at BASELINE_REF with its simd128 module as it shipped
  // (bench/lib/baseline.js builds it once under bench/.baseline/), or --today DIR.
  let todayError = null;
  if (args.today && !args.todayRoot) {
    try {
      args.todayRoot = ensureBaseline(log);
    } catch (e) {
      todayError = errText(e);
      log(`today's build: n/a (${todayError})`);
    }
  }
  if (!args.today) todayError = '--no-today';
  const { VARIANTS: NEW_VARIANTS, TODAY } = await import('../lib/wasm-bench.js');
  const env = {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism?.() ?? os.cpus().length,
    platform: `${process.platform}-${process.arch}`,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    ferrogpt: pkgVersion(root),
    commit: gitCommit(),
    wasmFiles: existsSync(join(root, 'dist/bindings/wasm')) ? spawnSync('ls', [join(root, 'dist/bindings/wasm')], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean) : [],
    peers: {
      onnxruntimeWeb: pkgVersion(join(peersDir, 'node_modules/onnxruntime-web')),
      tfjsCore: pkgVersion(join(peersDir, 'node_modules/@tensorflow/tfjs-core')),
      tfjsBackendWasm: pkgVersion(join(peersDir, 'node_modules/@tensorflow/tfjs-backend-wasm')),
    },
    playwrightCore: pkgVersion(join(root, 'node_modules/playwright-core')),
    vite: pkgVersion(join(root, 'node_modules/vite')),
    threads: args.threads,
    quick: args.quick,
    peersRun: args.peers,
    today: args.todayRoot ? { ref: BASELINE_REF, root: args.todayRoot } : { error: todayError },
    loadAverageStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
  log(`bench:browser: ${env.cpu}, ${env.cores} cores, node ${env.node}, ferrogpt ${env.ferrogpt} (${env.commit ?? 'no git'}), threads ${args.threads.join(',')}${args.quick ? ', --quick' : ''}; load ${env.loadAverageStart.join(' ')}`);
  log(`peers: onnxruntime-web ${env.peers.onnxruntimeWeb ?? 'n/a'}, tfjs-backend-wasm ${env.peers.tfjsBackendWasm ?? 'n/a'}${args.peers ? '' : ' (--no-peers: not run)'}`);

  const mon = startCpuMonitor();
  const browser = await runBrowser(args, log, mon);
  env.chromium = browser.chromium ?? null;
  env.loadAverageAfterBrowser = os.loadavg().map((x) => +x.toFixed(2));
  let node = { skipped: '--no-node' };
  if (args.node) {
    const w = await waitIdle(mon, { maxS: args.waitIdleS, log });
    mon.phase('Node child');
    node = { ...(await runNode(args, log)), waitedForIdle: w };
    mon.phase(null);
  }
  env.cpuMonitor = mon.stop();
  env.loadAverageEnd = os.loadavg().map((x) => +x.toFixed(2));
  env.wallSeconds = +((Date.now() - started) / 1e3).toFixed(1);

  const VARIANTS = NEW_VARIANTS; // "ours": the best of these at a thread count
  const merged = mergePages(browser.pages);
  const doc = {
    suite: 'browser',
    env,
    variants: args.todayRoot ? [...VARIANTS, TODAY] : VARIANTS,
    browser: { ...merged, pages: browser.pages.map((p) => ({ threads: p.threads, error: p.error, env: p.env, peers: p.peers, consoleProblems: p.consoleProblems, waitedForIdle: p.waitedForIdle })), errors: browser.errors, http404: browser.http404 ?? [] },
    browserAlone: browser.alonePages.length ? { matmul: mergePages(browser.alonePages).matmul, pages: browser.alonePages.map((p) => ({ threads: p.threads, error: p.error, waitedForIdle: p.waitedForIdle })) } : null,
    node: node.error || node.skipped ? node : { env: node.env, flags: node.flags, variants: node.variants, matmul: node.matmul, train: node.train, decode: node.decode, plan: node.plan, waitedForIdle: node.waitedForIdle },
    notes: [],
  };
  doc.ratios = { browser: ratios(doc.browser, VARIANTS, args.threads) };
  if (doc.node.matmul) doc.ratios.node = ratios(doc.node, VARIANTS, args.threads);
  for (const [phase, p] of Object.entries(env.cpuMonitor.phases)) {
    if (p.othersCores >= 0.1) doc.notes.push(`**During the ${phase} other processes used ${p.othersCores} cores on average (up to ${p.othersMaxCores}) of ${env.cores}**: its figures are likely low, 2-thread ones most of all (a pool that waits on a barrier loses a whole step when one of its threads loses its core). Rerun on an idle machine.`);
  }
  if (!env.cpuMonitor.available && env.loadAverageStart[0] > env.cores * 0.5) doc.notes.push(`The load average was ${env.loadAverageStart[0]} on ${env.cores} cores at the start: other processes may have shared the cores. Rerun on an idle machine.`);

  const md = renderBrowser(doc);
  log('\n' + md);
  const outDir = join(benchDir, 'results');
  mkdirSync(outDir, { recursive: true });
  // A --quick, --shapes or --only run must not replace the committed table.
  const partial = args.quick || args.shapes || args.only;
  const jsonPath = join(outDir, partial ? 'browser.partial.json' : 'browser.json');
  writeFileSync(jsonPath, JSON.stringify(doc, null, 2) + '\n');
  if (!partial) writeFileSync(join(outDir, 'browser.md'), md);
  log(`wrote ${relative(process.cwd(), jsonPath)}${partial ? ' (partial run: browser.md left as it was)' : ` and ${relative(process.cwd(), join(outDir, 'browser.md'))}`} in ${env.wallSeconds} s`);
  process.exit(0);
}
