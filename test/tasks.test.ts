// GPT-1's task input transformations (src/tasks): the token layout of each of the four, the
// truncation rule, padding and pooling, the task tokens in the tokenizer, dataset files and
// their errors, and the metrics. No model is run here (see finetune.test.ts).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '../src/objectives/lm.js';
import { loadTaskData, parseCsv, parseTaskData, validateExample } from '../src/tasks/data.js';
import { accuracy, f1Score, meanSquaredError, pearson, ranks, spearman } from '../src/tasks/metrics.js';
import { TASK_TOKENS, addTaskTokens } from '../src/tasks/special.js';
import { collate, encodeExample, poolFor, transformTokens, truncateSegments, type SpecialIds } from '../src/tasks/transform.js';
import { Tokenizer } from '../src/tokenizer/tokenizer.js';

// Ids far from the text ids, so a layout reads at a glance.
const S = 900;
const D = 901;
const X = 902;
const ids: SpecialIds = { start: S, delim: D, extract: X };
const arr = (x: Int32Array): number[] => Array.from(x);

describe('task input transformations (GPT-1 figure 1)', () => {
  it('classification: [start] text [extract]', () => {
    const r = transformTokens('classification', [[1, 2, 3]], ids, 16);
    expect(r.seqs.map(arr)).toEqual([[S, 1, 2, 3, X]]);
    expect(r.truncated).toBe(false);
  });

  it('entailment: [start] premise [delim] hypothesis [extract]', () => {
    const r = transformTokens('entailment', [[1, 2], [3, 4, 5]], ids, 16);
    expect(r.seqs.map(arr)).toEqual([[S, 1, 2, D, 3, 4, 5, X]]);
  });

  it('similarity: both orders, each [start] a [delim] b [extract]', () => {
    const r = transformTokens('similarity', [[1, 2], [3]], ids, 16);
    expect(r.seqs.map(arr)).toEqual([
      [S, 1, 2, D, 3, X],
      [S, 3, D, 1, 2, X],
    ]);
  });

  it('multiple choice: [start] context [delim] answer_k [extract] for every k', () => {
    const r = transformTokens('choice', [[1, 2], [7], [8, 9], [10]], ids, 16);
    expect(r.seqs.map(arr)).toEqual([
      [S, 1, 2, D, 7, X],
      [S, 1, 2, D, 8, 9, X],
      [S, 1, 2, D, 10, X],
    ]);
  });

  it('text is tokenized with special spellings read as plain text', () => {
    const tok = addTaskTokens(Tokenizer.trainFromTexts(['abc <|x|>'], { type: 'char' })).tokenizer;
    const sp = { start: tok.specialTokens.get(TASK_TOKENS.start)!, delim: tok.specialTokens.get(TASK_TOKENS.delim)!, extract: tok.specialTokens.get(TASK_TOKENS.extract)! };
    const r = encodeExample('entailment', { premise: 'ab', hypothesis: `c${TASK_TOKENS.extract}` }, tok, sp, 64);
    const seq = arr(r.seqs[0]);
    expect(seq[0]).toBe(sp.start);
    expect(seq.slice(1, 3)).toEqual(tok.encode('ab'));
    expect(seq[3]).toBe(sp.delim);
    expect(seq.at(-1)).toBe(sp.extract);
    // exactly one extract token: the forged one in the hypothesis is text
    expect(seq.filter((t) => t === sp.extract)).toHaveLength(1);
    expect(tok.decode(seq.slice(4, -1))).toBe(`c${TASK_TOKENS.extract}`);
  });
});

describe('truncation (longest segment first; never the added tokens)', () => {
  it('cuts the longest segment first, from its end', () => {
    const segs = [[1, 2, 3, 4, 5, 6], [7, 8]];
    expect(truncateSegments(segs, 5)).toBe(true);
    expect(segs).toEqual([[1, 2, 3], [7, 8]]);
    const even = [[1, 2, 3], [4, 5, 6]];
    truncateSegments(even, 3); // equals: the first one loses first
    expect(even).toEqual([[1], [4, 5]]);
    expect(truncateSegments([[1]], 1)).toBe(false);
  });

  it('keeps the extract token last and every added token, whatever the length', () => {
    const long = Array.from({ length: 50 }, (_, i) => i + 1);
    for (const maxLength of [3, 4, 7, 20]) {
      const c = transformTokens('classification', [long], ids, maxLength);
      expect(c.seqs[0].length).toBe(maxLength);
      expect(c.truncated).toBe(true);
      expect(arr(c.seqs[0])).toEqual([S, ...long.slice(0, maxLength - 2), X]);
      const e = transformTokens('entailment', [long, [1, 2]], ids, maxLength);
      expect(e.seqs[0].length).toBe(maxLength);
      expect(e.seqs[0][0]).toBe(S);
      expect(e.seqs[0].at(-1)).toBe(X);
      expect(arr(e.seqs[0]).filter((t) => t === D)).toHaveLength(1);
    }
    // entailment at 8: budget 5 → premise 3, hypothesis 2 (the hypothesis is not touched)
    expect(arr(transformTokens('entailment', [long, [61, 62]], ids, 8).seqs[0])).toEqual([S, 1, 2, 3, D, 61, 62, X]);
  });

  it('a multiple-choice context loses its START (the answer continues its end)', () => {
    const r = transformTokens('choice', [[1, 2, 3, 4, 5, 6], [7], [8, 9, 10, 11]], ids, 8);
    expect(r.truncated).toBe(true);
    // Budget 8 - 3 = 5 per choice. Answer [7]: the context alone is cut, 6 → 4.
    // Answer [8..11]: 6+4 → context 5, 4, (tie: the first) 3, answer 3, (tie) context 2.
    expect(r.seqs.map(arr)).toEqual([
      [S, 3, 4, 5, 6, D, 7, X],
      [S, 5, 6, D, 8, 9, 10, X],
    ]);
  });

  it('rejects a maxLength below 3', () => {
    expect(() => transformTokens('classification', [[1]], ids, 2)).toThrow(/maxLength/);
  });
});

describe('batches: padding, L1 targets, extract positions, pooling', () => {
  it('pads on the right and reads each sequence at its own extract token', () => {
    const a = transformTokens('classification', [[1, 2, 3]], ids, 16);
    const b = transformTokens('classification', [[4]], ids, 16);
    const batch = collate([a, b], 0);
    expect(batch).toMatchObject({ E: 2, S: 2, T: 5, perExample: 1 });
    expect(arr(batch.ids)).toEqual([S, 1, 2, 3, X, S, 4, X, 0, 0]);
    // L1: next token inside each sequence; nothing at the last real token or the padding
    const I = IGNORE_INDEX;
    expect(arr(batch.targets)).toEqual([1, 2, 3, X, I, 4, X, I, I, I]);
    expect(arr(batch.extract)).toEqual([4, 2]);
    const pool = poolFor('classification', batch);
    expect(pool.F).toBe(2);
    expect(arr(pool.rowA)).toEqual([4, 5 + 2]);
    expect(pool.rowB).toBeNull();
  });

  it('similarity pools the two orders of each example into one feature', () => {
    const e1 = transformTokens('similarity', [[1, 2], [3]], ids, 16);
    const e2 = transformTokens('similarity', [[4], [5]], ids, 16);
    const batch = collate([e1, e2]);
    expect(batch).toMatchObject({ E: 2, S: 4, T: 6, perExample: 2 });
    const pool = poolFor('similarity', batch);
    expect(pool.F).toBe(2);
    expect(arr(pool.rowA)).toEqual([0 * 6 + 5, 2 * 6 + 4]); // a$b of each example
    expect(arr(pool.rowB!)).toEqual([1 * 6 + 5, 3 * 6 + 4]); // b$a
  });

  it('multiple choice: one feature per (example, choice); a batch needs equal choice counts', () => {
    const e1 = transformTokens('choice', [[1], [2], [3, 4]], ids, 16);
    const batch = collate([e1, e1]);
    expect(batch).toMatchObject({ E: 2, S: 4, perExample: 2 });
    expect(poolFor('choice', batch).F).toBe(4);
    const e3 = transformTokens('choice', [[1], [2], [3], [4]], ids, 16);
    expect(() => collate([e1, e3])).toThrow(/same number/);
  });
});

describe('task tokens in the tokenizer', () => {
  it('adds <|start|> <|delim|> <|extract|> after the last id, once', () => {
    const base = Tokenizer.trainFromTexts(['hello world'], { type: 'char' });
    const { tokenizer, ids: sp, added } = addTaskTokens(base);
    expect(added).toEqual([TASK_TOKENS.start, TASK_TOKENS.delim, TASK_TOKENS.extract]);
    expect(sp).toEqual({ start: base.vocabSize, delim: base.vocabSize + 1, extract: base.vocabSize + 2 });
    expect(tokenizer.vocabSize).toBe(base.vocabSize + 3);
    expect(tokenizer.encode('hello')).toEqual(base.encode('hello'));
    expect(tokenizer.decode([sp.start])).toBe(TASK_TOKENS.start);
    // a tokenizer that has them keeps them (and is returned as is)
    const again = addTaskTokens(tokenizer);
    expect(again.added).toEqual([]);
    expect(again.ids).toEqual(sp);
    expect(again.tokenizer).toBe(tokenizer);
    // and they survive tokenizer.json
    const reloaded = Tokenizer.fromJSON(JSON.parse(JSON.stringify(tokenizer.toJSON())));
    expect(reloaded.specialTokens.get(TASK_TOKENS.extract)).toBe(sp.extract);
    expect(base.vocabSize).toBe(tokenizer.vocabSize - 3); // the original is unchanged
  });
});

describe('task datasets (JSONL, CSV)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferrogpt-tasks-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads every type from JSONL and CSV', async () => {
    const jsonl = ['{"text": "good", "label": "pos"}', '', '{"text": "bad", "label": 0}'].join('\n');
    expect(parseTaskData(jsonl, 'jsonl', 'classification')).toEqual([{ text: 'good', label: 'pos' }, { text: 'bad', label: 0 }]);
    const csv = 'premise,hypothesis,label\n"a, b","say ""hi""",entailment\r\n"two\nlines",x,neutral\n';
    expect(parseTaskData(csv, 'csv', 'entailment')).toEqual([
      { premise: 'a, b', hypothesis: 'say "hi"', label: 'entailment' },
      { premise: 'two\nlines', hypothesis: 'x', label: 'neutral' },
    ]);
    expect(parseTaskData('text1,text2,score\na,b,3.5\n', 'csv', 'similarity')).toEqual([{ text1: 'a', text2: 'b', score: 3.5 }]);
    expect(parseTaskData('context\tchoice0\tchoice1\tlabel\nctx\tA\tB\t1\n', 'tsv', 'choice')).toEqual([{ context: 'ctx', choices: ['A', 'B'], label: 1 }]);
    expect(parseTaskData('{"context": "c", "choices": ["a", "b", "c"], "label": 2}', 'jsonl', 'choice')).toEqual([{ context: 'c', choices: ['a', 'b', 'c'], label: 2 }]);
    const path = join(dir, 'train.jsonl');
    await writeFile(path, '{"text1": "a", "text2": "b", "label": 1}\n');
    expect(await loadTaskData(path, 'similarity')).toEqual([{ text1: 'a', text2: 'b', label: 1 }]);
  });

  it('names the file, line and field of every mistake', async () => {
    const path = join(dir, 'bad.jsonl');
    await writeFile(path, '{"text": "ok", "label": 1}\n{"txt": "oops", "label": 1}\n');
    await expect(loadTaskData(path, 'classification')).rejects.toThrow(`${path}:2: field "text" is missing`);
    expect(() => parseTaskData('{"text": "a"}', 'jsonl', 'classification', { source: 'f.jsonl' })).toThrow('f.jsonl:1: field "label" is missing');
    expect(parseTaskData('{"text": "a"}', 'jsonl', 'classification', { requireLabels: false })).toEqual([{ text: 'a' }]);
    expect(() => parseTaskData('\n{"text": 5, "label": 1}', 'jsonl', 'classification', { source: 'f' })).toThrow('f:2: field "text" must be a string');
    expect(() => parseTaskData('{"text": "a", "label": 1', 'jsonl', 'classification', { source: 'f' })).toThrow(/^f:1: not valid JSON/);
    expect(() => parseTaskData('{"context": "c", "choices": ["a"], "label": 0}', 'jsonl', 'choice', { source: 'f' })).toThrow('f:1: field "choices" must be an array of at least 2');
    expect(() => parseTaskData('{"context": "c", "choices": ["a", "b"], "label": 2}', 'jsonl', 'choice', { source: 'f' })).toThrow(/f:1: field "label" must be the index .* 0\.\.1/);
    expect(() => parseTaskData('{"text1": "a", "text2": "b"}', 'jsonl', 'similarity', { source: 'f' })).toThrow('f:1: field "label" (or "score"');
    expect(() => parseTaskData('text,label\na,1\n"b\nc",2,3\n', 'csv', 'classification', { source: 'f.csv' })).toThrow('f.csv:3: 3 fields, but the header has 2');
    expect(() => parseTaskData('text1,text2,score\na,b,high\n', 'csv', 'similarity', { source: 'f.csv' })).toThrow('f.csv:2: field "score" must be a number');
    expect(() => parseCsv('a,"b\n', ',', 'f.csv')).toThrow('f.csv:1: a quoted field is not closed');
    expect(() => parseTaskData('', 'jsonl', 'classification', { source: 'f' })).toThrow('f: no examples');
    expect(() => validateExample('regression' as never, {}, 'x')).toThrow(/task type must be one of/);
    await expect(loadTaskData(join(dir, 'data.txt'), 'classification')).rejects.toThrow(/unknown data format/);
  });
});

describe('metrics', () => {
  it('accuracy and F1 of the positive class', () => {
    const pred = [1, 1, 0, 0, 1];
    const gold = [1, 0, 0, 1, 1];
    expect(accuracy(pred, gold)).toBeCloseTo(3 / 5, 12);
    // tp 2, fp 1, fn 1 → F1 = 4 / 6
    expect(f1Score(pred, gold)).toBeCloseTo(2 / 3, 12);
    expect(f1Score([0, 0], [1, 0])).toBe(0);
  });

  it('Pearson, Spearman (average ranks for ties), MSE', () => {
    expect(pearson([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(pearson([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
    // scipy.stats.pearsonr([1,2,3,4],[1,3,2,4]) = 0.8
    expect(pearson([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(0.8, 12);
    expect(Array.from(ranks([10, 20, 20, 5]))).toEqual([2, 3.5, 3.5, 1]);
    // monotone but not linear: Spearman 1, Pearson < 1
    expect(spearman([1, 2, 3, 4], [1, 4, 9, 100])).toBeCloseTo(1, 12);
    // scipy.stats.spearmanr([1,2,3,4,5],[5,6,7,8,7]) = 0.8207826816681233
    expect(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])).toBeCloseTo(0.8207826816681233, 12);
    expect(meanSquaredError([1, 2], [0, 4])).toBeCloseTo(2.5, 12);
    expect(pearson([1, 1], [1, 2])).toBeNaN();
  });
});
