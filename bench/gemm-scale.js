// The lm-head GEMM (256×768×50257) and its peers, round after round on a shared machine:
// before every round it waits for the cores to be idle (bench/lib/cpu-monitor.js), then
// runs every entry once, in alternating order (forward on even rounds, reversed on odd),
// each in a fresh child process, and records what other processes took meanwhile.
// Prints the median GFLOPS of each entry over the rounds.
//
//   node bench/gemm-scale.js [--rounds R] [--wait-idle S] [--shapes MxKxN,...] [--no-peers]
//       [--bench LABEL=PATH ...] [--backward]
//
// --bench: a gemm_bench binary (cargo build --release -p ferrogpt-kernels --example
//   gemm_bench --features bench; copy it away to keep a baseline), run at 1 and 2 threads
//   with GEMM_PEAK fixed (the peak is printed once, measured here, 2 processes at once).
//   Its figure per process is the best of ≥ 5 calls; the medians here are over rounds.
// Peers: OpenBLAS through Debian's numpy (python3-numpy + libopenblas0-pthread, the
//   libblas.so.3 alternative; OPENBLAS_NUM_THREADS=1|2, x @ W.T with W (N, K) C-ordered),
//   and onnxruntime-node (bench/peers/ort.js, intra-op threads 1|2). Each: median of 7.
// --backward adds gemm_bench's backward (dinp + dweight, at twice the forward's FLOPs) and
//   numpy's dinp (g @ W) and dweight (dw += g.T @ x) separately.
// Rounds in which other processes held a core say so ("others" ≈ 1): on a 2-core machine
//   the 2-thread rows then measure the machine's load, not the kernel.

import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCpuMonitor, waitIdle } from './lib/cpu-monitor.js';
import { median } from './lib/util.js';

const here = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const a = { rounds: 5, waitIdleS: 120, shapes: ['256x768x50257'], peers: true, benches: [], backward: false };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === '--rounds') a.rounds = Number(argv[++i]);
    else if (s === '--wait-idle') a.waitIdleS = Number(argv[++i]);
    else if (s === '--shapes') a.shapes = argv[++i].split(',');
    else if (s === '--no-peers') a.peers = false;
    else if (s === '--backward') a.backward = true;
    else if (s === '--bench') {
      const [label, path] = argv[++i].split('=');
      a.benches.push({ label, path });
    } else throw new Error(`unknown option ${s}`);
  }
  return a;
}

const PY = `
import numpy as np, time, sys
M, K, N, bwd = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1'
rng = np.random.default_rng(1)
x = rng.standard_normal((M, K), dtype=np.float32)
W = rng.standard_normal((N, K), dtype=np.float32) * np.float32(1 / np.sqrt(K))
def t(f, reps=7):
    f(); ts = []
    for _ in range(reps):
        s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
    return sorted(ts)[len(ts) // 2]
fl = 2 * M * K * N
print('fwd', fl / t(lambda: x @ W.T) / 1e9)
if bwd:
    g = rng.standard_normal((M, N), dtype=np.float32)
    dw = np.zeros((N, K), dtype=np.float32)
    print('dinp', fl / t(lambda: g @ W) / 1e9)
    def dW():
        dw.__iadd__(g.T @ x)
    print('dweight', fl / t(dW) / 1e9)
`;

const ORT = `
import { ortMatmul } from ${JSON.stringify(join(here, 'peers/ort.js'))};
import { randomF32 } from ${JSON.stringify(join(here, 'lib/rng.js'))};
const [M, K, N, T] = process.argv.slice(2).map(Number);
const h = await ortMatmul(M, K, N, randomF32(M * K, 1), randomF32(N * K, 2, 1 / Math.sqrt(K)), T);
await h.run();
const ts = [];
for (let i = 0; i < 7; i++) { const s = performance.now(); await h.run(); ts.push(performance.now() - s); }
ts.sort((a, b) => a - b);
console.log('fwd', (2 * M * K * N) / (ts[3] / 1e3) / 1e9);
await h.dispose();
`;

function parseKV(out) {
  const r = {};
  for (const line of out.split('\n')) {
    const m = line.trim().match(/^(fwd|dinp|dweight|bwd) ([\d.]+)$/);
    if (m) r[m[1]] = Number(m[2]);
  }
  return r;
}

/** gemm_bench rows: "N,C,OC thr fwdGF %peak cpu% bwdGF %peak cpu%" → { fwd, bwd } */
function parseBench(out, shape, threads) {
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === shape && Number(f[1]) === threads) return { fwd: Number(f[2]), bwd: Number(f[5]) };
  }
  throw new Error(`no row for ${shape} ${threads}T in:\n${out}`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const tmp = mkdtempSync(join(os.tmpdir(), 'gemm-scale-'));
  const py = join(tmp, 'ob.py');
  const ort = join(tmp, 'ort.mjs');
  writeFileSync(py, PY);
  writeFileSync(ort, ORT);
  const mon = startCpuMonitor();
  const log = (s) => console.log(s);
  await new Promise((r) => setTimeout(r, 1200));

  // Entries: label → () => { key: GFLOPS }.
  const entries = [];
  for (const shape of args.shapes) {
    const [M, K, N] = shape.split('x').map(Number);
    const bshape = `${M},${K},${N}`;
    for (const b of args.benches) {
      for (const t of [1, 2]) {
        entries.push({
          label: `${b.label} ${t}T ${shape}`,
          run: () => parseBench(execFileSync(b.path, [args.backward ? 'all' : 'fwd', String(t), bshape], { env: { ...process.env, GEMM_PEAK: '126' }, encoding: 'utf8' }), bshape, t),
        });
      }
    }
    if (args.peers) {
      for (const t of [1, 2]) {
        entries.push({
          label: `openblas ${t}T ${shape}`,
          run: () => parseKV(execFileSync('/usr/bin/python3', [py, M, K, N, args.backward ? '1' : '0'].map(String), { env: { ...process.env, OPENBLAS_NUM_THREADS: String(t) }, encoding: 'utf8' })),
        });
        entries.push({ label: `ort ${t}T ${shape}`, run: () => parseKV(execFileSync(process.execPath, [ort, M, K, N, t].map(String), { encoding: 'utf8' })) });
      }
    }
  }
  const got = new Map(entries.map((e) => [e.label, []]));
  for (let r = 0; r < args.rounds; r++) {
    const w = await waitIdle(mon, { maxS: args.waitIdleS, log });
    const order = r % 2 ? [...entries].reverse() : entries;
    for (const e of order) {
      const t0 = Date.now();
      const res = e.run();
      const others = mon.othersBetween(t0, Date.now());
      got.get(e.label).push({ ...res, others });
      log(`round ${r} ${e.label.padEnd(32)} ${Object.entries(res).map(([k, v]) => `${k} ${v.toFixed(1)}`).join('  ')}  (others ${others?.toFixed(2) ?? '?'} cores${w.idle === false ? ', never idle' : ''})`);
    }
  }
  mon.stop();
  console.log('\nmedians over rounds (GFLOPS; shared machine):');
  for (const [label, rs] of got) {
    const keys = Object.keys(rs[0]).filter((k) => k !== 'others');
    console.log(`${label.padEnd(32)} ${keys.map((k) => `${k} ${median(rs.map((x) => x[k])).toFixed(1)}`).join('  ')}  others median ${median(rs.map((x) => x.others ?? NaN)).toFixed(2)}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
