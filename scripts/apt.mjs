// Installs Debian packages the project needs, when it may: as root on Debian (a fresh CI or
// dev machine). Used by the wasm build (its Rust toolchain) and the PyTorch benchmarks.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** The command a user runs to install `packages` themselves. */
export function aptCommand(packages) {
  return `apt-get install -y ${packages.join(' ')}`;
}

/** Whether this process may install Debian packages itself (root on Debian). */
export function canAptInstall() {
  return typeof process.getuid === 'function' && process.getuid() === 0 && existsSync('/etc/debian_version');
}

/**
 * apt-get install -y `packages` (after an apt-get update if the first try fails), output
 * shown. Returns whether it succeeded; callers check canAptInstall() first.
 */
export function aptInstall(packages) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', ...packages], { stdio: 'inherit', env });
  let r = install();
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
    r = install();
  }
  return r.status === 0;
}
