// ESM consumer: `import` resolves package.json exports' "import" condition (dist/src).
import * as lib from 'ferrogpt';
import flow from './flow.cjs';

await flow(lib, 'esm');
