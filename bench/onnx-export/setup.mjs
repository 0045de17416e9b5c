// The python side of the onnxruntime decode peer: a venv at bench/.venv-onnx that sees
// Debian's python3-torch (1.13, system-wide) and holds pinned onnx + onnxruntime from PyPI.
//
//   node bench/onnx-export/setup.mjs [--apt] [--venv DIR] [--python PYTHON3]
//
// --apt: when Debian's python3-torch is missing, install it (apt-get, needs root); without
// it a missing torch is an error naming the package. Idempotent: a venv whose python
// already imports torch and the pinned versions is left as it is. Also a module:
// ensureOnnxVenv() returns the venv's python (bench/lib/onnx-decode.js calls it).
//
// Why a venv with --system-site-packages: torch from PyPI is a 700+ MB download (CUDA
// builds by default) while Debian's package is already on these machines; the venv adds
// only onnx/onnxruntime on top. numpy stays Debian's (torch 1.13 is built against numpy
// 1.x; a numpy 2 pulled in by a dependency would break `import torch`): pip gets a
// constraint pinning numpy to the version the system python has.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_VENV = resolve(here, '..', '.venv-onnx');

/**
 * Exact versions installed into the venv. onnxruntime matches bench/peers' onnxruntime-node
 * (1.30.0), so quantization and the runtime that times the model are one release. onnx
 * 1.20.1 has cp311 manylinux wheels and needs numpy >= 1.23.2 (Debian 12 has 1.24.2).
 * protobuf and ml_dtypes (dependencies of onnx) are pinned too: their newest releases
 * move faster than onnx does.
 */
export const PINS = { onnxruntime: '1.30.0', onnx: '1.20.1', protobuf: '5.29.5', ml_dtypes: '0.5.1' };

/** Debian's interpreter first (its dist-packages hold python3-torch), then python3 on PATH. */
function systemPython(candidates = ['/usr/bin/python3', 'python3']) {
  for (const p of candidates) {
    const r = spawnSync(p, ['-c', 'import sys; print(sys.version.split()[0])'], { encoding: 'utf8' });
    if (r.status === 0) return { python: p, version: r.stdout.trim() };
  }
  return null;
}

const tail = (s, n = 20) => String(s ?? '').trim().split('\n').slice(-n).join('\n');

/** Runs a command; returns { ok, stdout, stderr, status }. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) return { ok: false, status: null, stdout: '', stderr: String(r.error.message) };
  return { ok: r.status === 0, status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

// Prints one JSON line: the versions the venv's python imports (null for a missing module).
const PROBE = `
import json, importlib
out = {}
for m in ["torch", "numpy", "onnx", "onnxruntime", "google.protobuf", "ml_dtypes"]:
    try:
        out[m] = importlib.import_module(m).__version__
    except Exception as e:
        out[m] = None
print(json.dumps(out))
`;

function probe(python) {
  const r = run(python, ['-c', PROBE]);
  if (!r.ok) return null;
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    return null;
  }
}

/** What the venv lacks against PINS (a list of "name have → want"); empty when ready. */
function missing(v) {
  if (!v) return ['the venv python does not run'];
  const out = [];
  if (!v.torch) out.push('torch (from the system site-packages)');
  const want = { onnxruntime: PINS.onnxruntime, onnx: PINS.onnx, 'google.protobuf': PINS.protobuf, ml_dtypes: PINS.ml_dtypes };
  for (const [m, ver] of Object.entries(want)) if (v[m] !== ver) out.push(`${m} ${v[m] ?? 'absent'} → ${ver}`);
  return out;
}

/**
 * Makes sure the venv exists with torch visible and the pinned packages; returns
 * { python, venv, versions, actions, seconds }. `python`: the interpreter to base the venv on
 * (default /usr/bin/python3, else python3 on PATH). Throws an Error naming what failed (no
 * python3, no torch, venv, pip) with the tail of the failing command's stderr.
 */
export function ensureOnnxVenv({ venv = DEFAULT_VENV, apt = false, python, log = () => {} } = {}) {
  const t0 = performance.now();
  const actions = [];
  const vpy = join(venv, 'bin', 'python');
  const done = (versions) => ({ python: vpy, venv, versions, actions, seconds: +((performance.now() - t0) / 1e3).toFixed(1) });

  if (existsSync(vpy)) {
    const v = probe(vpy);
    if (missing(v).length === 0) {
      actions.push('already set up');
      return done(v);
    }
  }

  const sys = systemPython(python ? [python] : undefined);
  if (!sys) throw new Error(`onnx setup: no python3: ${python ? `${python} does not run` : 'neither /usr/bin/python3 nor python3 on PATH runs'} (Debian: apt-get install python3 python3-venv)`);
  let torchCheck = run(sys.python, ['-c', 'import torch, numpy; print(torch.__version__, numpy.__version__)']);
  if (!torchCheck.ok && apt) {
    log('onnx setup: torch missing from the system python; installing Debian python3-torch (apt-get)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = run('apt-get', ['install', '-y', '--no-install-recommends', 'python3-torch'], { env });
    if (!r.ok) {
      run('apt-get', ['update'], { env });
      r = run('apt-get', ['install', '-y', '--no-install-recommends', 'python3-torch'], { env });
    }
    if (!r.ok) throw new Error(`onnx setup: apt-get install python3-torch failed (exit ${r.status}):\n${tail(r.stderr)}`);
    actions.push('apt-get install python3-torch');
    torchCheck = run(sys.python, ['-c', 'import torch, numpy; print(torch.__version__, numpy.__version__)']);
  }
  if (!torchCheck.ok) {
    throw new Error(`onnx setup: no torch: ${sys.python} (Python ${sys.version}) cannot import torch and numpy; install Debian's python3-torch (apt-get install python3-torch, or run this with --apt as root):\n${tail(torchCheck.stderr, 3)}`);
  }
  const [torchVer, numpyVer] = torchCheck.stdout.trim().split(/\s+/);
  if (!torchVer.startsWith('1.13')) log(`onnx setup: note: system torch is ${torchVer}, not Debian bookworm's 1.13 (the exporter was written against 1.13)`);

  if (!existsSync(vpy)) {
    const r = run(sys.python, ['-m', 'venv', '--system-site-packages', venv]);
    if (!r.ok) throw new Error(`onnx setup: python3 -m venv failed (exit ${r.status}; Debian: apt-get install python3-venv):\n${tail(r.stderr)}`);
    actions.push(`created venv ${relative(process.cwd(), venv) || venv} (--system-site-packages, ${sys.python} ${sys.version})`);
  }

  const tmp = mkdtempSync(join(tmpdir(), 'ferrogpt-onnx-'));
  try {
    const constraints = join(tmp, 'constraints.txt');
    writeFileSync(constraints, `numpy==${numpyVer}\n`);
    const specs = Object.entries(PINS).map(([k, v]) => `${k}==${v}`);
    log(`onnx setup: pip install ${specs.join(' ')} (numpy held at the system's ${numpyVer})`);
    const r = run(vpy, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '-c', constraints, ...specs]);
    if (!r.ok) throw new Error(`onnx setup: pip failed (exit ${r.status}) installing ${specs.join(' ')}:\n${tail(r.stderr || r.stdout)}`);
    actions.push(`pip install ${specs.join(' ')}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const v = probe(vpy);
  const still = missing(v);
  if (still.length) throw new Error(`onnx setup: after pip install the venv still lacks: ${still.join('; ')}`);
  return done(v);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const opts = { apt: argv.includes('--apt'), log: (s) => console.log(s) };
  const vi = argv.indexOf('--venv');
  if (vi >= 0) opts.venv = resolve(argv[vi + 1]);
  const pi = argv.indexOf('--python');
  if (pi >= 0) opts.python = argv[pi + 1];
  try {
    const r = ensureOnnxVenv(opts);
    console.log(`onnx setup: ${r.actions.join('; ')} in ${r.seconds} s`);
    console.log(`onnx setup: ${r.python}: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
