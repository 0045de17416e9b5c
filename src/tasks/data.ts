// Task datasets: JSON Lines or CSV/TSV files (or arrays of objects), one example each, with
// these fields per task type:
//
//   classification  text, label
//   entailment      premise, hypothesis, label
//   similarity      text1, text2, and label (classes, e.g. paraphrase 0/1) or score (a number,
//                   e.g. STS 0..5: the head is then a regression)
//   choice          context, choices (JSON: an array of strings; CSV: columns choice0,
//                   choice1, ... — as many as there are answers), label (the index of the
//                   right answer, from 0)
//
// A label is a string or a number; classes are compared by their text ("1" and 1 are the
// same class). Labels may be left out of files that are only predicted on. Every error
// names the file, the line (the first line of a CSV record) and the field.
//
// .jsonl / .ndjson: one JSON object per line (blank lines skipped); .json: an array of
// objects; .csv / .tsv: a header row with the field names, then RFC 4180 records (quotes
// around fields with separators, quotes or line breaks; "" for a quote).

import type { ChoiceExample, ClassificationExample, EntailmentExample, SimilarityExample, TaskExample, TaskType } from './transform.js';
import { TASK_TYPES } from './transform.js';

export type DataFormat = 'jsonl' | 'json' | 'csv' | 'tsv';

export interface ParseOptions {
  /** Name used in error messages (the path). */
  source?: string;
  /** Fail on examples without a label (or score). Default true. */
  requireLabels?: boolean;
}

/** The format a path's extension stands for. */
export function formatOf(path: string): DataFormat {
  const m = /\.(jsonl|ndjson|json|csv|tsv)$/i.exec(path);
  if (m === null) throw new Error(`${path}: unknown data format (use .jsonl, .json, .csv or .tsv)`);
  const ext = m[1].toLowerCase();
  return ext === 'ndjson' ? 'jsonl' : (ext as DataFormat);
}

/** Reads a task dataset file (format from its extension). */
export async function loadTaskData(path: string, type: TaskType, options: Omit<ParseOptions, 'source'> = {}): Promise<TaskExample[]> {
  const { readFile } = await import('node:fs/promises');
  const format = formatOf(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseTaskData(text, format, type, { ...options, source: path });
}

/** Parses a dataset's text; see the top of this file. */
export function parseTaskData(text: string, format: DataFormat, type: TaskType, options: ParseOptions = {}): TaskExample[] {
  checkType(type);
  const source = options.source ?? `<${format}>`;
  const requireLabels = options.requireLabels ?? true;
  const out: TaskExample[] = [];
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a BOM, as spreadsheets write
  if (format === 'jsonl') {
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const where = `${source}:${i + 1}`;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (err) {
        throw new Error(`${where}: not valid JSON (${(err as Error).message})`);
      }
      out.push(validateExample(type, obj, where, requireLabels));
    });
  } else if (format === 'json') {
    let arr: unknown;
    try {
      arr = JSON.parse(text);
    } catch (err) {
      throw new Error(`${source}: not valid JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(arr)) throw new Error(`${source}: a .json dataset must hold an array of examples`);
    arr.forEach((obj, i) => out.push(validateExample(type, obj, `${source}[${i}]`, requireLabels)));
  } else {
    const records = parseCsv(text, format === 'tsv' ? '\t' : ',', source);
    if (records.length === 0) throw new Error(`${source}: empty (a header row with the field names is needed)`);
    const header = records[0].fields.map((h) => h.trim());
    header.forEach((h, i) => {
      if (h === '') throw new Error(`${source}:${records[0].line}: header column ${i + 1} has no name`);
      if (header.indexOf(h) !== i) throw new Error(`${source}:${records[0].line}: header names the column "${h}" twice`);
    });
    for (const rec of records.slice(1)) {
      const where = `${source}:${rec.line}`;
      if (rec.fields.length === 1 && rec.fields[0].trim() === '') continue; // blank line
      if (rec.fields.length !== header.length) {
        throw new Error(`${where}: ${rec.fields.length} fields, but the header has ${header.length} (${header.join(', ')})`);
      }
      out.push(validateExample(type, csvObject(type, header, rec.fields, where), where, requireLabels));
    }
  }
  if (out.length === 0) throw new Error(`${source}: no examples`);
  return out;
}

/** A CSV row as the object a JSON line would be: numbers for scores, choices collected. */
function csvObject(type: TaskType, header: string[], fields: string[], where: string): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  header.forEach((h, i) => (obj[h] = fields[i]));
  if (type === 'similarity' && obj.score !== undefined) {
    const s = String(obj.score).trim();
    obj.score = s === '' ? undefined : Number(s);
    if (s !== '' && !Number.isFinite(obj.score)) throw new Error(`${where}: field "score" must be a number, got ${JSON.stringify(s)}`);
  }
  if (obj.label === '') delete obj.label;
  if (type === 'choice') {
    const cols = header.filter((h) => /^choice\d+$/.test(h)).sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
    if (cols.length === 0) throw new Error(`${where}: a choice CSV needs columns choice0, choice1, ... (one per answer)`);
    cols.forEach((c, i) => {
      if (c !== `choice${i}`) throw new Error(`${where}: choice columns must be choice0..choice${cols.length - 1} without gaps (found ${c})`);
    });
    obj.choices = cols.map((c) => obj[c]);
    if (obj.label !== undefined) {
      const s = String(obj.label).trim();
      obj.label = /^\d+$/.test(s) ? Number(s) : s;
    }
  }
  return obj;
}

/** Checks one example's fields for `type`; returns a clean copy. `where` prefixes errors. */
export function validateExample(type: TaskType, raw: unknown, where: string, requireLabels = true): TaskExample {
  checkType(type);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where}: an example must be an object with fields, got ${describe(raw)}`);
  const o = raw as Record<string, unknown>;
  const str = (name: string): string => {
    const v = o[name];
    if (v === undefined || v === null) throw new Error(`${where}: field "${name}" is missing (a ${type} example has ${FIELDS[type]})`);
    if (typeof v !== 'string') throw new Error(`${where}: field "${name}" must be a string, got ${describe(v)}`);
    return v;
  };
  const label = (): string | number | undefined => {
    const v = o.label;
    if (v === undefined || v === null) {
      if (requireLabels) throw new Error(`${where}: field "label" is missing (a ${type} example has ${FIELDS[type]})`);
      return undefined;
    }
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string' && v.trim() !== '') return v.trim();
    if (typeof v === 'boolean') return String(v);
    throw new Error(`${where}: field "label" must be a string or a number, got ${describe(v)}`);
  };
  switch (type) {
    case 'classification': {
      const ex: ClassificationExample = { text: str('text') };
      const l = label();
      if (l !== undefined) ex.label = l;
      return ex;
    }
    case 'entailment': {
      const ex: EntailmentExample = { premise: str('premise'), hypothesis: str('hypothesis') };
      const l = label();
      if (l !== undefined) ex.label = l;
      return ex;
    }
    case 'similarity': {
      const ex: SimilarityExample = { text1: str('text1'), text2: str('text2') };
      if (o.score !== undefined && o.score !== null) {
        if (typeof o.score !== 'number' || !Number.isFinite(o.score)) throw new Error(`${where}: field "score" must be a finite number, got ${describe(o.score)}`);
        ex.score = o.score;
      }
      if (o.label !== undefined && o.label !== null) ex.label = label();
      if (requireLabels && ex.score === undefined && ex.label === undefined) {
        throw new Error(`${where}: field "label" (or "score", for a regression) is missing (a similarity example has ${FIELDS.similarity})`);
      }
      return ex;
    }
    case 'choice': {
      const ctx = str('context');
      const ch = o.choices;
      if (ch === undefined || ch === null) throw new Error(`${where}: field "choices" is missing (a choice example has ${FIELDS.choice})`);
      if (!Array.isArray(ch) || ch.length < 2) throw new Error(`${where}: field "choices" must be an array of at least 2 strings, got ${describe(ch)}`);
      ch.forEach((c, i) => {
        if (typeof c !== 'string') throw new Error(`${where}: field "choices[${i}]" must be a string, got ${describe(c)}`);
      });
      const ex: ChoiceExample = { context: ctx, choices: [...(ch as string[])] };
      let l = label();
      if (typeof l === 'string' && /^\d+$/.test(l)) l = Number(l);
      if (l !== undefined) {
        if (typeof l !== 'number' || !Number.isInteger(l) || l < 0 || l >= ch.length) {
          throw new Error(`${where}: field "label" must be the index of the right choice, an integer in 0..${ch.length - 1}, got ${JSON.stringify(l)}`);
        }
        ex.label = l;
      }
      return ex;
    }
  }
  throw new Error(`unknown task type ${JSON.stringify(type)}`);
}

const FIELDS: Record<TaskType, string> = {
  classification: 'text, label',
  entailment: 'premise, hypothesis, label',
  similarity: 'text1, text2, and label or score',
  choice: 'context, choices, label',
};

function checkType(type: unknown): asserts type is TaskType {
  if (!(TASK_TYPES as readonly unknown[]).includes(type)) throw new Error(`task type must be one of ${TASK_TYPES.join(', ')}, got ${JSON.stringify(type)}`);
}

/** RFC 4180 records with the line each starts on (1-based). */
export function parseCsv(text: string, sep: string, source = '<csv>'): Array<{ line: number; fields: string[] }> {
  const records: Array<{ line: number; fields: string[] }> = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let start = 1;
  let i = 0;
  let quoted = false; // inside "..."
  let wasQuoted = false; // the current field was quoted (text after the closing quote is an error)
  const endField = (): void => {
    fields.push(field);
    field = '';
    wasQuoted = false;
  };
  const endRecord = (): void => {
    endField();
    records.push({ line: start, fields });
    fields = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        wasQuoted = true;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      i++;
      continue;
    }
    if (c === '"') {
      if (field !== '' || wasQuoted) throw new Error(`${source}:${line}: a quote inside an unquoted field (quote the whole field and write "" for a quote)`);
      quoted = true;
    } else if (c === sep) {
      endField();
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      start = line;
    } else {
      if (wasQuoted) throw new Error(`${source}:${line}: text after a closing quote`);
      field += c;
    }
    i++;
  }
  if (quoted) throw new Error(`${source}:${start}: a quoted field is not closed`);
  if (field !== '' || fields.length > 0 || wasQuoted) endRecord();
  return records;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return `an array of ${x.length}`;
  if (typeof x === 'string') return JSON.stringify(x.length > 40 ? x.slice(0, 40) + '…' : x);
  if (typeof x === 'object') return 'an object';
  return `${typeof x} ${String(x)}`;
}
