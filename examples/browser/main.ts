// The example's page: wires the controls to the worker (worker.ts), streams generated text
// into #output and draws the training loss as an SVG line chart. Nothing heavy runs here.
//
// Checkpoint files come from ./model/ (config.json, model.safetensors, tokenizer.json and
// train.txt, the text the live training reads); ?model=<url/> points elsewhere. The page's
// state is mirrored on `window.demo` for scripts (the browser test reads it).

import type { Reply, Request } from './worker.ts';

interface DemoState {
  backend: { name: string; simd: string; threads: number; version: string } | null;
  model: Extract<Reply, { type: 'model' }> | null;
  busy: boolean;
  generations: Array<Extract<Reply, { type: 'generated' }>>;
  losses: number[];
  trainings: Array<Extract<Reply, { type: 'trained' }>>;
  errors: string[];
  frames: number;
  /** Text chunks received from the worker while generating (> 1: it streamed). */
  chunks: number;
}

const demo: DemoState = { backend: null, model: null, busy: true, generations: [], losses: [], trainings: [], errors: [], frames: 0, chunks: 0 };
(window as unknown as { demo: DemoState }).demo = demo;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const output = $<HTMLDivElement>('output');
const chart = $<HTMLElement>('loss-chart') as unknown as SVGSVGElement;
const genButton = $<HTMLButtonElement>('generate');
const trainButton = $<HTMLButtonElement>('train');
const stopGen = $<HTMLButtonElement>('stop-gen');
const stopTrain = $<HTMLButtonElement>('stop-train');
const choice = $<HTMLSelectElement>('model-choice');
const num = (id: string) => Number($<HTMLInputElement>(id).value);

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (r: Request) => worker.postMessage(r);

function setBusy(busy: boolean, job?: 'generate' | 'train'): void {
  demo.busy = busy;
  genButton.disabled = busy || !demo.model;
  trainButton.disabled = busy || !demo.model;
  stopGen.disabled = !(busy && job === 'generate');
  stopTrain.disabled = !(busy && job === 'train');
}

// A frame counter: it keeps counting while the worker trains, which shows the page is free.
const heartbeat = $<HTMLSpanElement>('heartbeat');
const tick = () => {
  demo.frames++;
  if (demo.frames % 10 === 0) heartbeat.textContent = `page frames: ${demo.frames}`;
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);

let trainStart = 0;
worker.onmessage = (e: MessageEvent<Reply>) => {
  const r = e.data;
  switch (r.type) {
    case 'backend': {
      demo.backend = r.info;
      const el = $<HTMLSpanElement>('backend');
      el.textContent = `backend: ${r.info.name} · ${r.info.simd} · ${r.info.threads} thread${r.info.threads === 1 ? '' : 's'} · v${r.info.version}`;
      el.className = 'ok';
      break;
    }
    case 'model':
      demo.model = r;
      $<HTMLSpanElement>('model-info').textContent = `checkpoint: ${r.nLayer} layers · ${r.nEmbd} wide · ${(r.params / 1e3).toFixed(0)}k params · vocab ${r.vocabSize}`;
      setBusy(false);
      break;
    case 'chunk':
      demo.chunks++;
      output.append(document.createTextNode(r.text));
      break;
    case 'generated': {
      demo.generations.push(r);
      const secs = r.ms / 1000;
      $<HTMLDivElement>('gen-status').textContent = `${r.tokens.length} tokens in ${secs.toFixed(2)} s (${(r.tokens.length / Math.max(secs, 1e-3)).toFixed(0)} tok/s), ${r.finishReason}`;
      setBusy(false);
      break;
    }
    case 'step':
      demo.losses.push(r.loss);
      drawChart(demo.losses, r.steps);
      $<HTMLDivElement>('train-status').textContent = `step ${r.step}/${r.steps} · loss ${r.loss.toFixed(3)} · ${r.tokensPerSec.toFixed(0)} tok/s`;
      break;
    case 'trained': {
      demo.trainings.push(r);
      const first = r.losses[0];
      const last = r.losses[r.losses.length - 1];
      $<HTMLDivElement>('train-status').textContent =
        `${r.stopped ? 'stopped' : 'done'}: ${r.losses.length} steps in ${(r.ms / 1000).toFixed(1)} s · loss ${first?.toFixed(3)} → ${last?.toFixed(3)} · ${(r.params / 1e3).toFixed(0)}k params`;
      (choice.options[1] as HTMLOptionElement).disabled = false;
      setBusy(false);
      break;
    }
    case 'error':
      demo.errors.push(`${r.during}: ${r.message}`);
      $<HTMLDivElement>(r.during === 'train' ? 'train-status' : 'gen-status').textContent = `error: ${r.message}`;
      if (r.during === 'init') {
        const el = $<HTMLSpanElement>('backend');
        el.textContent = `error: ${r.message}`;
        el.className = 'err';
      }
      setBusy(false);
      break;
  }
};
worker.onerror = (e) => {
  demo.errors.push(`worker: ${e.message}`);
  $<HTMLSpanElement>('backend').textContent = `worker error: ${e.message}`;
};

genButton.onclick = () => {
  const prompt = $<HTMLInputElement>('prompt').value;
  output.replaceChildren(Object.assign(document.createElement('span'), { className: 'prompt', textContent: prompt }));
  $<HTMLDivElement>('gen-status').textContent = 'generating…';
  setBusy(true, 'generate');
  send({
    type: 'generate',
    model: choice.value as 'checkpoint' | 'trained',
    prompt,
    maxNewTokens: num('max-tokens'),
    seed: num('seed'),
    temperature: num('temperature'),
    topK: num('top-k'),
  });
};
trainButton.onclick = () => {
  demo.losses = [];
  trainStart = performance.now();
  drawChart([], num('steps'));
  $<HTMLDivElement>('train-status').textContent = 'training…';
  setBusy(true, 'train');
  send({ type: 'train', steps: num('steps'), batchSize: num('batch'), lr: num('lr') });
};
stopGen.onclick = stopTrain.onclick = () => send({ type: 'stop' });
void trainStart;

/** The loss curve: a polyline over steps, y from the min to the max loss seen, with ticks. */
function drawChart(losses: number[], steps: number): void {
  const W = 440, H = 230, L = 44, R = 10, T = 12, B = 28;
  const ns = 'http://www.w3.org/2000/svg';
  const el = (tag: string, attrs: Record<string, string | number>, text?: string) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    return n;
  };
  const lo = losses.length ? Math.min(...losses) : 0;
  const hi = losses.length ? Math.max(...losses) : 1;
  const span = hi - lo || 1;
  const x = (i: number) => L + ((W - L - R) * i) / Math.max(steps - 1, 1);
  const y = (v: number) => T + ((H - T - B) * (hi - v)) / span;
  const nodes: Element[] = [
    el('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999' }),
    el('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#999' }),
    el('text', { x: L - 4, y: T + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#555' }, hi.toFixed(2)),
    el('text', { x: L - 4, y: H - B, 'text-anchor': 'end', 'font-size': 11, fill: '#555' }, lo.toFixed(2)),
    el('text', { x: L, y: H - 8, 'font-size': 11, fill: '#555' }, '1'),
    el('text', { x: W - R, y: H - 8, 'text-anchor': 'end', 'font-size': 11, fill: '#555' }, String(steps)),
    el('text', { x: (L + W) / 2, y: H - 8, 'text-anchor': 'middle', 'font-size': 11, fill: '#555' }, 'step'),
    el('text', { x: 12, y: (T + H - B) / 2, 'font-size': 11, fill: '#555', transform: `rotate(-90 12 ${(T + H - B) / 2})`, 'text-anchor': 'middle' }, 'loss'),
  ];
  if (losses.length > 0) {
    const points = losses.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    nodes.push(el('polyline', { id: 'loss-line', points, fill: 'none', stroke: '#2f6fdb', 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' }));
  }
  chart.replaceChildren(...nodes);
}
drawChart([], num('steps'));

const base = new URL(new URLSearchParams(location.search).get('model') ?? './model/', location.href).href;
setBusy(true);
send({ type: 'init', base });
