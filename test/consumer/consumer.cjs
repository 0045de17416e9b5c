// CommonJS consumer: `require` resolves package.json exports' "require" condition
// (dist/cjs), synchronously: the exports are there on return.
'use strict';
const lib = require('ferrogpt');
if (typeof lib.GPT !== 'function' || typeof lib.generate !== 'function') {
  throw new Error(`require('ferrogpt') did not return the library synchronously (keys: ${Object.keys(lib).join(', ')})`);
}
require('./flow.cjs')(lib, 'cjs').catch((err) => {
  console.error(err);
  process.exit(1);
});
