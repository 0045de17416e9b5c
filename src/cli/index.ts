#!/usr/bin/env node
// The `ferrogpt` executable (package.json "bin"). All the logic is in main.ts.

import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
