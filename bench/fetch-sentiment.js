#!/usr/bin/env node
// Fetches the labeled data set of the fine-tuning benchmark (bench/suites/finetune.js) from a
// package registry — the only outside source this project's machines reach — and derives a
// fixed train / validation split from it. Nothing here is committed; bench/data/ is ignored.
//
//   node bench/fetch-sentiment.js          (the finetune suite calls it when the data is missing)
//
// The data: "Sentiment Labelled Sentences" (Kotzias, Denil, de Freitas and Smyth, "From
// Group to Individual Labels using Deep Features", KDD 2015; UCI Machine Learning
// Repository): 3000 sentences from Amazon product reviews, IMDb movie reviews and Yelp
// restaurant reviews, 1000 each, half positive (1) and half negative (0). The npm package
// `sentiment` (MIT licence, Andrew Sliwinski) ships the three files as its validation
// fixtures (test/fixtures/{amazon,imdb,yelp}.json, objects { text, class }), so
// `npm pack sentiment@5.0.2` brings them here. UCI distributes the data set under CC BY 4.0
// (attribution: cite the paper above); see bench/results/finetune.md.
//
// Derivation (deterministic): drop records without a 0/1 class (each file ends with one),
// trim the text, drop exact duplicate texts (keeping the first; duplicates would leak from
// train into validation), shuffle with mulberry32(seed 2015), first 80% train, rest
// validation. Written as JSON Lines { text, label, source } with label "0" / "1", plus
// SOURCE.json (package, version, tarball integrity, counts) and the unpacked package.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from './lib/rng.js';

const here = dirname(fileURLToPath(import.meta.url));
export const DATA_DIR = join(here, 'data', 'uci-sentiment');
/** The unpacked npm package (its lexicon scorer is a reference row of the benchmark). */
export const PACKAGE_DIR = join(DATA_DIR, 'sentiment-package');
const PACKAGE = 'sentiment';
const VERSION = '5.0.2';
const FILES = ['amazon', 'imdb', 'yelp'];
const SEED = 2015;
const TRAIN_FRACTION = 0.8;

/** Paths of train.jsonl / valid.jsonl, fetching and deriving them first when missing. */
export function fetchSentiment(log = console.log) {
  const train = join(DATA_DIR, 'train.jsonl');
  const valid = join(DATA_DIR, 'valid.jsonl');
  const sourcePath = join(DATA_DIR, 'SOURCE.json');
  if (existsSync(train) && existsSync(valid) && existsSync(sourcePath) && existsSync(PACKAGE_DIR)) return { train, valid, source: JSON.parse(readFileSync(sourcePath, 'utf8')) };

  const tmp = mkdtempSync(join(os.tmpdir(), 'ferrogpt-sentiment-'));
  try {
    log(`fetching ${PACKAGE}@${VERSION} from the npm registry (npm pack) for its labeled fixtures`);
    const pack = spawnSync('npm', ['pack', `${PACKAGE}@${VERSION}`, '--json', '--pack-destination', tmp], { encoding: 'utf8' });
    if (pack.status !== 0) throw new Error(`npm pack ${PACKAGE}@${VERSION} failed (exit ${pack.status}): ${pack.stderr.trim().split('\n').slice(-3).join(' ')}`);
    const info = JSON.parse(pack.stdout)[0];
    const tarball = join(tmp, readdirSync(tmp).find((f) => f.endsWith('.tgz')));
    const tar = spawnSync('tar', ['-xzf', tarball, '-C', tmp], { encoding: 'utf8' });
    if (tar.status !== 0) throw new Error(`tar could not extract ${tarball}: ${tar.stderr.trim()}`);
    // The package itself is kept too (about 100 kB): its AFINN lexicon scorer is the
    // benchmark's no-learning reference row.
    mkdirSync(DATA_DIR, { recursive: true });
    cpSync(join(tmp, 'package'), PACKAGE_DIR, { recursive: true });

    const seen = new Set();
    const rows = [];
    const perFile = {};
    for (const f of FILES) {
      const records = JSON.parse(readFileSync(join(tmp, 'package', 'test', 'fixtures', `${f}.json`), 'utf8'));
      perFile[f] = { records: records.length, kept: 0 };
      for (const r of records) {
        if (r === null || typeof r.text !== 'string' || (r.class !== 0 && r.class !== 1)) continue;
        const text = r.text.trim();
        if (text === '' || seen.has(text)) continue;
        seen.add(text);
        rows.push({ text, label: String(r.class), source: f });
        perFile[f].kept++;
      }
    }
    const rng = mulberry32(SEED);
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [rows[i], rows[j]] = [rows[j], rows[i]];
    }
    const nTrain = Math.round(rows.length * TRAIN_FRACTION);
    const write = (path, xs) => writeFileSync(path, xs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    mkdirSync(DATA_DIR, { recursive: true });
    write(train, rows.slice(0, nTrain));
    write(valid, rows.slice(nTrain));
    const count = (xs, l) => xs.filter((r) => r.label === l).length;
    const source = {
      dataset: 'Sentiment Labelled Sentences (Kotzias et al., KDD 2015; UCI Machine Learning Repository)',
      datasetLicence: 'CC BY 4.0 (as distributed by UCI)',
      package: `${PACKAGE}@${info.version}`,
      packageLicence: JSON.parse(readFileSync(join(tmp, 'package', 'package.json'), 'utf8')).license,
      integrity: info.integrity,
      files: FILES.map((f) => `test/fixtures/${f}.json`),
      perFile,
      derivation: `0/1 records only, trimmed, exact duplicates dropped, mulberry32(${SEED}) shuffle, ${TRAIN_FRACTION * 100}% train`,
      train: { examples: nTrain, positive: count(rows.slice(0, nTrain), '1') },
      valid: { examples: rows.length - nTrain, positive: count(rows.slice(nTrain), '1') },
    };
    writeFileSync(sourcePath, JSON.stringify(source, null, 2) + '\n');
    log(`wrote ${nTrain} train and ${rows.length - nTrain} validation sentences to ${DATA_DIR}`);
    return { train, valid, source };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) fetchSentiment();
