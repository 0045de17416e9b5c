// The markdown files point at things that exist. For every markdown file in the repo
// (`git ls-files`: tracked, plus new files git does not ignore):
//   - every relative link [text](path) and image ![alt](path), and every reference-style
//     definition [label]: path, resolves to a file or folder inside the repo (a link that
//     climbs above the repo root fails even if the target exists on this machine);
//   - a #anchor on a link to a markdown file (or on a bare #anchor) matches a heading of
//     the target, slugged as GitHub does (lowercase, punctuation dropped, spaces → '-',
//     '-1', '-2', ... for repeats), or an explicit <a id="…"> / <a name="…">;
//   - every backticked word that looks like a repo path (it has a '/' and ends in a known
//     extension, or starts with a top-level folder of the repo) exists, relative to the
//     markdown file or to the repo root. Placeholders (<suite>, *, …) are not paths, and a
//     path git ignores (bench/results/*.json, dist/) is a build output: it need not exist.
// Fenced code blocks are left alone: they hold commands and code, not references.
// Also: no tracked file refers to the design folder that sat next to the checkout (a
// `shared` folder one level up), which a clone does not have.
//
// The checker is tested on bad input first, so this file can fail.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));

function git(args: string[]): string {
  return execFileSync('git', args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
}

/** Files in the repo: tracked ones plus untracked ones git does not ignore. */
function repoFiles(pattern?: string): string[] {
  const out = git(['ls-files', '-z', '--cached', '--others', '--exclude-standard', ...(pattern ? [pattern] : [])]);
  return [...new Set(out.split('\0').filter((f) => f !== '' && !f.split('/').includes('node_modules')))].sort();
}

const EXTENSIONS = new Set([
  'ts', 'mts', 'cts', 'js', 'mjs', 'cjs', 'json', 'md', 'rs', 'toml', 'lock', 'py', 'txt', 'html',
  'css', 'sh', 'yml', 'yaml', 'svg', 'png', 'wasm', 'node', 'safetensors', 'bin', 'tgz',
]);

export interface Repo {
  root: string;
  /** Top-level folders of the repo (bench, src, .ci, ...). */
  topDirs: Set<string>;
  exists(abs: string): boolean;
  isIgnored(rel: string): boolean;
  read(abs: string): string;
}

function realRepo(): Repo {
  const files = repoFiles();
  const topDirs = new Set(files.filter((f) => f.includes('/')).map((f) => f.split('/')[0]));
  const ignored = new Map<string, boolean>();
  return {
    root,
    topDirs,
    exists: (abs) => existsSync(abs),
    isIgnored: (rel) => {
      let hit = ignored.get(rel);
      if (hit === undefined) {
        // check-ignore exits 0 when the path is ignored, 1 when not.
        try {
          git(['check-ignore', '-q', '--no-index', rel]);
          hit = true;
        } catch {
          hit = false;
        }
        ignored.set(rel, hit);
      }
      return hit;
    },
    read: (abs) => readFileSync(abs, 'utf8'),
  };
}

/** GitHub's heading anchor (github-slugger): lowercase, drop punctuation, spaces → '-'. */
export function slug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The text without fenced code blocks (``` or ~~~), lines kept so numbers stay right. */
function withoutFences(text: string): string {
  const lines = text.split('\n');
  let fence: string | null = null;
  return lines
    .map((line) => {
      const m = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
      if (fence === null && m) {
        fence = m[1];
        return '';
      }
      if (fence !== null) {
        if (line.trim().startsWith(fence[0].repeat(fence.length)) && line.trim().replace(/[`~]/g, '') === '') fence = null;
        return '';
      }
      return line;
    })
    .join('\n');
}

/** Every anchor a markdown text defines: its headings, slugged as GitHub does, and <a id|name>. */
export function anchors(text: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutFences(text).split('\n')) {
    const h = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      const plain = h[1]
        .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images → their text
        .replace(/<[^>]+>/g, ''); // inline HTML
      const base = slug(plain);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      out.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const a of line.matchAll(/<a\s[^>]*(?:id|name)="([^"]+)"/g)) out.add(a[1]);
  }
  return out;
}

export interface Problem {
  line: number;
  message: string;
}

/** Where `target` (relative to the folder `base`, or to the root if it starts with '/') points, or why it is wrong. */
function resolveIn(repo: Repo, base: string, target: string): { abs: string } | { error: string } {
  const abs = target.startsWith('/') ? join(repo.root, target) : resolve(base, target);
  const rel = relative(repo.root, abs);
  if (rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) return { error: 'points outside the repo' };
  return { abs };
}

/** Link targets: [text](target "title"), ![alt](target), <target> forms, and [label]: target. */
function linkTargets(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) {
    out.push(m[1].replace(/^<|>$/g, ''));
  }
  const def = /^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(line);
  if (def) out.push(def[1].replace(/^<|>$/g, ''));
  return out;
}

/** Backticked words of a line that look like repo paths. */
export function pathWords(line: string, topDirs: Set<string>): string[] {
  const out: string[] = [];
  // Inline code spans: `x` or ``x`` (not across lines).
  for (const m of line.matchAll(/(`+)([^`]+?)\1(?!`)/g)) {
    for (let word of m[2].trim().split(/\s+/)) {
      word = word.replace(/^["'(\[]+|["'),;:.\]]+$/g, '');
      if (word.includes('=')) word = word.slice(word.lastIndexOf('=') + 1);
      word = word.replace(/:\d+(-\d+)?$/, ''); // file.ts:42
      if (word === '' || /[<>*{}$|…?]/.test(word) || word.includes('://')) continue;
      if (word.startsWith('/') || word.startsWith('~') || word.startsWith('-') || word.startsWith('@') || /^[a-z]+:/.test(word)) continue;
      const parts = word.split('/');
      const ext = /\.([A-Za-z0-9]+)$/.exec(parts[parts.length - 1])?.[1];
      const isFile = word.includes('/') && ext !== undefined && EXTENSIONS.has(ext.toLowerCase());
      const inTopDir = word.includes('/') && topDirs.has(parts[0]);
      if (isFile || inTopDir) out.push(word);
    }
  }
  return out;
}

/** Everything wrong with the links and paths of one markdown file (`file` relative to the root). */
export function checkMarkdown(repo: Repo, file: string, text: string): Problem[] {
  const problems: Problem[] = [];
  const lines = withoutFences(text).split('\n');
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOf = (abs: string): Set<string> => {
    let a = anchorCache.get(abs);
    if (!a) anchorCache.set(abs, (a = anchors(abs === join(repo.root, file) ? text : repo.read(abs))));
    return a;
  };

  lines.forEach((line, i) => {
    const n = i + 1;
    for (const raw of linkTargets(line.replace(/(`+)[^`]+?\1(?!`)/g, (m) => ' '.repeat(m.length)))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(raw)) continue; // https:, mailto:, ...
      const [pathPart, anchor] = raw.split('#', 2) as [string, string | undefined];
      let target = join(repo.root, file);
      if (pathPart !== '') {
        let decoded = pathPart;
        try {
          decoded = decodeURIComponent(pathPart);
        } catch {
          /* keep it as written */
        }
        const r = resolveIn(repo, dirname(join(repo.root, file)), decoded);
        if ('error' in r) {
          problems.push({ line: n, message: `link ${raw} ${r.error}` });
          continue;
        }
        if (!repo.exists(r.abs)) {
          problems.push({ line: n, message: `link ${raw}: ${relative(repo.root, r.abs)} does not exist` });
          continue;
        }
        target = r.abs;
      }
      if (anchor !== undefined && anchor !== '' && target.endsWith('.md')) {
        if (!anchorsOf(target).has(decodeURIComponent(anchor).toLowerCase())) {
          problems.push({ line: n, message: `link ${raw}: no heading #${anchor} in ${relative(repo.root, target)}` });
        }
      }
    }
    for (const word of pathWords(line, repo.topDirs)) {
      const fromFile = resolveIn(repo, dirname(join(repo.root, file)), word);
      const fromRoot = resolveIn(repo, repo.root, word);
      if ('error' in fromFile && 'error' in fromRoot) {
        problems.push({ line: n, message: `\`${word}\` points outside the repo` });
        continue;
      }
      const hit = [fromFile, fromRoot].some((r) => 'abs' in r && repo.exists(r.abs));
      if (hit) continue;
      // A path git ignores is a build or run output (dist/, bench/results/*.json): it need
      // not exist in a checkout. Judged relative to the root, where such paths are written.
      if ('abs' in fromRoot && repo.isIgnored(relative(repo.root, fromRoot.abs) + (word.endsWith('/') ? '/' : ''))) continue;
      problems.push({ line: n, message: `\`${word}\` does not exist (neither next to ${file} nor from the repo root)` });
    }
  });
  return problems;
}

// ---------------------------------------------------------------------------------------

// The design folder outside the repo, spelled so that this file does not contain it.
const SHARED = ['..', 'shared', ''].join('/');

describe('the markdown checker', () => {
  // A small fake repo: these files exist, nothing else.
  const files: Record<string, string> = {
    'README.md': '# Title\n\n## Quick start\n\n## Quick start\n',
    'docs/ARCHITECTURE.md': '# Design\n\n## The `Backend` boundary\n\n## A/B of two builds (dev tool)\n<a id="custom"></a>\n',
    'src/index.ts': '',
    'bench/ab.js': '',
  };
  const fake: Repo = {
    root: '/repo',
    topDirs: new Set(['docs', 'src', 'bench', 'test']),
    exists: (abs) => {
      const rel = relative('/repo', abs);
      return rel in files || Object.keys(files).some((f) => f.startsWith(rel + '/'));
    },
    isIgnored: (rel) => rel.startsWith('dist/') || rel.endsWith('.json'),
    read: (abs) => files[relative('/repo', abs)] ?? '',
  };
  const check = (text: string, file = 'README.md') => checkMarkdown(fake, file, text).map((p) => p.message);

  it('slugs headings as GitHub does', () => {
    expect(slug('The `Backend` boundary')).toBe('the-backend-boundary');
    expect(slug('A/B of two builds (dev tool)')).toBe('ab-of-two-builds-dev-tool');
    expect(slug('What it implements (GPT-1, GPT-2, GPT-3)')).toBe('what-it-implements-gpt-1-gpt-2-gpt-3');
    expect([...anchors('# Quick start\n## Quick start\n```\n# not a heading\n```\n')]).toEqual(['quick-start', 'quick-start-1']);
  });

  it('accepts good links, anchors and paths', () => {
    const good = [
      '## Quick start',
      '## Quick start',
      '[design](docs/ARCHITECTURE.md)',
      '[boundary](docs/ARCHITECTURE.md#the-backend-boundary)',
      '[ab](docs/ARCHITECTURE.md#ab-of-two-builds-dev-tool) and [c](docs/ARCHITECTURE.md#custom)',
      '[again](#quick-start-1) ![img](src/index.ts "title") [web](https://example.com/x.md#nope)',
      '[folder](src/) [root](/src/index.ts) `a [not](a-link.md) in code`',
      '`src/index.ts`, `node bench/ab.js <rootA> <rootB>`, `bench/results/<suite>.md`, `dist/src/index.js`',
      '`bench/results/train.json` (ignored) `FERROGPT_X=/abs/path.ts` `@scope/pkg` `node:fs/promises` `src/index.ts:12`',
      '```sh\n[broken](nowhere.md) `src/missing.ts`\n```',
    ];
    expect(check(good.join('\n'))).toEqual([]);
    expect(checkMarkdown(fake, 'docs/ARCHITECTURE.md', '[readme](../README.md#title) `src/index.ts`')).toEqual([]);
  });

  it('reports a link to a missing file', () => {
    expect(check('see [x](docs/MISSING.md)')).toEqual(['link docs/MISSING.md: docs/MISSING.md does not exist']);
    expect(check('[ref]: src/gone.ts')).toHaveLength(1);
  });

  it('reports a link that climbs out of the repo', () => {
    expect(check(`[d](${SHARED}DESIGN.md)`)).toEqual([`link ${SHARED}DESIGN.md points outside the repo`]);
    expect(checkMarkdown(fake, 'docs/ARCHITECTURE.md', '[d](../../x.md)').map((p) => p.message)).toEqual(['link ../../x.md points outside the repo']);
  });

  it('reports an anchor that matches no heading', () => {
    expect(check('[x](docs/ARCHITECTURE.md#no-such-heading) [y](#nope)')).toEqual([
      'link docs/ARCHITECTURE.md#no-such-heading: no heading #no-such-heading in docs/ARCHITECTURE.md',
      'link #nope: no heading #nope in README.md',
    ]);
  });

  it('reports a backticked path that does not exist or leaves the repo', () => {
    expect(check('`src/train/missing.ts` and `run node bench/nope.js`')).toHaveLength(2);
    expect(check(`see \`${SHARED}DESIGN.md\``)).toEqual([`\`${SHARED}DESIGN.md\` points outside the repo`]);
    expect(check('`test/helpers/`')).toHaveLength(1); // starts with a top-level folder
  });

  it('gives the line of each problem', () => {
    expect(checkMarkdown(fake, 'README.md', 'ok\n\n[x](gone.md)').map((p) => p.line)).toEqual([3]);
  });
});

describe('markdown files: links and paths resolve inside the repo', () => {
  const repo = realRepo();
  const markdown = repoFiles('*.md');

  it('finds the markdown files', () => {
    expect(markdown).toEqual(expect.arrayContaining(['README.md', 'CONTRIBUTING.md', 'docs/ARCHITECTURE.md', 'bench/README.md', 'data/README.md']));
  });

  for (const file of markdown) {
    it(file, () => {
      const problems = checkMarkdown(repo, file, readFileSync(join(root, file), 'utf8'));
      expect(problems.map((p) => `${file}:${p.line}: ${p.message}`)).toEqual([]);
    });
  }
});

describe('no file points outside the repo', () => {
  it('no tracked file mentions the design folder outside the repo', () => {
    const needle = SHARED;
    const hits: string[] = [];
    for (const file of repoFiles()) {
      const abs = join(root, file);
      if (!existsSync(abs) || !statSync(abs).isFile()) continue; // deleted in the work tree
      const text = readFileSync(abs);
      if (text.includes(0)) continue; // binary
      const s = text.toString('utf8');
      s.split('\n').forEach((line, i) => {
        if (line.includes(needle)) hits.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(hits).toEqual([]);
  });
});
