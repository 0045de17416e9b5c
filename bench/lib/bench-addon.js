// The addon's benchmark build: the shipped addon (npm run build:native) leaves out the
// probes peakGflops, memoryBandwidth and attentionScratchBytes (cargo feature `bench` of
// crates/node); `npm run build:native:bench` builds one with them into bench/.native/.
// The suites that use the probes (kernels, generate) call ensureBenchAddon first: it
// (re)builds that addon when it is missing or older than the Rust sources, then points
// the library's loader at it (FERROGPT_NATIVE_PATH, which worker threads and child
// processes inherit), so the NativeBackend and the raw addon are the same module.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Newest mtime (ms) of the files under `dir` whose name matches `re` (target/ skipped). */
function newest(dir, re) {
  let t = 0;
  if (!existsSync(dir)) return t;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'target' || e.name === 'node_modules') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p, re));
    else if (re.test(e.name)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

function benchAddonFile(root) {
  const dir = join(root, 'bench', '.native');
  if (!existsSync(dir)) return null;
  const plat = `${process.platform}-${process.arch}`;
  const files = readdirSync(dir).filter((f) => f.endsWith('.node'));
  const f = files.find((x) => x.includes(plat)) ?? files[0];
  return f ? join(dir, f) : null;
}

/**
 * Makes the benchmark build of `root`'s addon the one its library loads. `build`: build it
 * (npm run build:native:bench in root) if missing or stale; false (--no-install) only
 * uses what is there. Returns the .node path, or null: a checkout from before the probes
 * became a feature (no such npm script: its default addon has them) or no bench build.
 */
export function ensureBenchAddon(root, { build = true, log = console.log } = {}) {
  if (process.env.FERROGPT_NATIVE_PATH) return process.env.FERROGPT_NATIVE_PATH; // chosen by the caller
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (!pkg.scripts?.['build:native:bench']) return null;
  let file = benchAddonFile(root);
  const sources = Math.max(newest(join(root, 'crates'), /\.(rs|toml)$/), existsSync(join(root, 'Cargo.lock')) ? statSync(join(root, 'Cargo.lock')).mtimeMs : 0);
  const stale = !file || statSync(file).mtimeMs < sources;
  if (stale && build) {
    log(`building the addon with the benchmark probes: npm run build:native:bench (in ${root})`);
    const r = spawnSync('npm', ['run', 'build:native:bench'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) log(`npm run build:native:bench failed (exit ${r.status}); the probes will say n/a`);
    file = benchAddonFile(root);
  } else if (stale) {
    log(file ? `bench/.native/ is older than the Rust sources (--no-install: not rebuilt)` : 'no bench/.native/ addon (--no-install: not built); the probes will say n/a');
  }
  if (file) {
    process.env.FERROGPT_NATIVE_PATH = file;
    log(`addon with benchmark probes: ${relative(process.cwd(), file) || file}`);
  }
  return file;
}
