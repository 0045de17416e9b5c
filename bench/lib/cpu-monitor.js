// How much CPU other processes take while a benchmark runs (Linux: /proc). Every 0.5 s it
// reads utime + stime of every process and splits them into ours (this process and its
// descendants: Chromium, the Node child) and everyone else's, and adds the steal time of
// /proc/stat (a VM's CPU given to other machines), so a result measured while something
// else held a core says so. The load average cannot tell: it counts our own threads too.
//
//   const mon = startCpuMonitor();  mon.phase('page 1T');  …  mon.phase(null);  mon.stop()
//   → { available, phases: { 'page 1T': { seconds, oursCores, othersCores, othersMaxCores } } }
// mon.othersBetween(t0, t1): others' cores on average between two Date.now() times, so a
// measurement can be told that it shared the machine (and be taken again).
// waitIdle(mon, { maxS, belowCores }) waits until others use less than belowCores for 3 samples.

import { readFileSync, readdirSync } from 'node:fs';

const TICK = 100; // USER_HZ on Linux

/** Steal ticks (time the hypervisor gave this VM's CPUs to others) from /proc/stat, or null. */
function readSteal() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    return Number(f[8] ?? 0);
  } catch {
    return null;
  }
}

function readProcs() {
  const out = new Map();
  let names;
  try {
    names = readdirSync('/proc');
  } catch {
    return null;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
      out.set(Number(name), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
    } catch {
      /* gone */
    }
  }
  return out;
}

export function startCpuMonitor(periodMs = 500) {
  const me = process.pid;
  let last = readProcs();
  const available = last !== null;
  const phases = {};
  let current = null;
  let recent = []; // others' cores over the last samples (for waitIdle)
  const history = []; // { from, to (Date.now() ms), others (cores) }, the last 30 minutes
  let lastT = performance.now();
  let lastWall = Date.now();
  let lastSteal = readSteal();
  const sample = () => {
    const now = readProcs();
    const t = performance.now();
    if (!now || !last) return;
    const ours = new Set([me]);
    // Descendants: repeat until no new pid joins (a child can have a higher pid than its parent's parent).
    for (let grew = true; grew; ) {
      grew = false;
      for (const [pid, p] of now) if (!ours.has(pid) && ours.has(p.ppid)) (ours.add(pid), (grew = true));
    }
    let o = 0;
    let x = 0;
    for (const [pid, p] of now) {
      const d = p.ticks - (last.get(pid)?.ticks ?? 0); // a process that started since: all its time
      if (d <= 0) continue;
      if (ours.has(pid)) o += d;
      else x += d;
    }
    const s = (t - lastT) / 1e3;
    if (s <= 0) return;
    last = now;
    lastT = t;
    const wall = Date.now();
    const oc = o / TICK / s;
    const steal = readSteal();
    const sc = steal != null && lastSteal != null ? (steal - lastSteal) / TICK / s : 0;
    lastSteal = steal;
    // Other processes, plus CPU time the hypervisor gave to other machines (steal): both
    // take a core away from the benchmark.
    const xc = x / TICK / s + sc;
    recent = [...recent.slice(-9), xc];
    history.push({ from: lastWall, to: wall, others: xc });
    lastWall = wall;
    while (history.length && history[0].to < wall - 30 * 60e3) history.shift();
    if (current) {
      const ph = (phases[current] ??= { seconds: 0, oursCoreS: 0, othersCoreS: 0, othersMaxCores: 0, stealCoreS: 0 });
      ph.stealCoreS += sc * s;
      ph.seconds += s;
      ph.oursCoreS += oc * s;
      ph.othersCoreS += xc * s;
      ph.othersMaxCores = Math.max(ph.othersMaxCores, xc);
    }
  };
  const timer = available ? setInterval(sample, periodMs) : null;
  timer?.unref?.();
  return {
    available,
    phase(name) {
      if (available) sample();
      current = name;
    },
    /** Others' cores on average over [t0, t1] (Date.now() ms), null when unknown. */
    othersBetween(t0, t1) {
      if (!available) return null;
      sample(); // closes the interval that is still open
      let w = 0;
      let sum = 0;
      for (const h of history) {
        const o = Math.min(h.to, t1) - Math.max(h.from, t0);
        if (o > 0) (w += o), (sum += o * h.others);
      }
      if (w === 0) {
        const h = history.find((x) => x.to >= t1) ?? history[history.length - 1];
        return h ? +h.others.toFixed(2) : null;
      }
      return +(sum / w).toFixed(2);
    },
    /** Others' cores in the last n samples. */
    recent: (n) => recent.slice(-n),
    stop() {
      if (timer) clearInterval(timer);
      const out = {};
      for (const [k, p] of Object.entries(phases)) {
        out[k] = { seconds: +p.seconds.toFixed(1), oursCores: +(p.oursCoreS / p.seconds).toFixed(2), othersCores: +(p.othersCoreS / p.seconds).toFixed(2), othersMaxCores: +p.othersMaxCores.toFixed(2), stealCores: +(p.stealCoreS / p.seconds).toFixed(2) };
      }
      return { available, phases: out };
    },
  };
}

/** Waits (up to maxS) until other processes used under belowCores in each of the last 3 samples. Returns the seconds waited, and whether it got idle. */
export async function waitIdle(mon, { maxS = 120, belowCores = 0.15, log = () => {} } = {}) {
  if (!mon.available || maxS <= 0) return { waitedS: 0, idle: null };
  const t0 = performance.now();
  let said = false;
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const r = mon.recent(3);
    if (r.length >= 3 && r.every((c) => c < belowCores)) return { waitedS: +((performance.now() - t0) / 1e3).toFixed(0), idle: true };
    if ((performance.now() - t0) / 1e3 > maxS) return { waitedS: maxS, idle: false };
    if (!said) {
      log(`waiting for the cores: other processes use ${r[r.length - 1]?.toFixed(2) ?? '?'} cores (up to ${maxS} s, --wait-idle)`);
      said = true;
    }
  }
}
