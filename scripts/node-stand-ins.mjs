// The node: modules the library imports, which a browser bundle replaces with the stand-ins
// of src/io/browser-node.ts. package.json's "browser" field lists them for bundlers that
// resolve the package; the repo's own bundles (the example, the browser test's kernel page,
// bench:browser's page) import the sources or dist/ by path, where that field does not
// apply, so they alias the same list, read from it here.

import { readFileSync } from 'node:fs';

const browserField = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).browser;

/** Matches every module package.json's "browser" field maps, e.g. node:fs/promises. */
export const NODE_STAND_INS = new RegExp(`^(${Object.keys(browserField).map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
