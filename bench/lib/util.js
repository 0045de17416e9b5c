// Small helpers every suite uses, with no node: imports: the browser suite's page bundles
// them too (through bench/lib/wasm-bench.js).

/** The median of a non-empty list of numbers (the mean of the middle two for an even count). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** An error's first line, for a table cell or a log line. */
export const errText = (e) => (e && e.message ? e.message.split('\n')[0] : String(e));
