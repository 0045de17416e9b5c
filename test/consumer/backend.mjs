// Prints which backend the default order picks (and where the native addon came from).
import { initBackend, backendInfo } from 'ferrogpt';

const backend = await initBackend();
console.log(JSON.stringify({ backend: backend.name, simd: backendInfo().simd, source: backend.source ?? null }));
