#!/usr/bin/python3
# The PyTorch peer of bench/suites/train.js and bench/suites/train.quality.js: a minimal
# GPT-2 (nanoGPT's model.py, pre-LN, tanh GELU, tied lm head, dropout 0) trained with
# torch.optim.AdamW. Run with Debian's python3-torch (/usr/bin/python3); the Node scripts
# start it with the environment that gives PyTorch its best CPU speed (see trainEnv there).
#
#   /usr/bin/python3 bench/torch_train.py bench   JOB.json   -> JSON on stdout: step times
#   /usr/bin/python3 bench/torch_train.py profile JOB.json   -> JSON: per-op-kind ms per step
#   /usr/bin/python3 bench/torch_train.py quality JOB.json   -> JSON: losses of a training run
#
# JOB.json carries the model shape, threads and step counts; for `quality` also the paths
# of the encoded corpus (int32), the batch offsets (int32, one per row) of every training
# iteration and of the validation batches, the learning rate of every iteration (computed
# by ferrogpt's schedule in Node, so both frameworks use the very same rates) and, when
# given, the initial weights (float32, ferrogpt's parameter layout = nn.Linear's (OC, C)).
#
# bench/torch_finetune.py (fine-tuning parity, bench/finetune-parity.js) imports this file's
# GPT (GPT.hidden: the states a task head reads), build_model and adamw: one PyTorch GPT.

import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, NH, T):
        super().__init__()
        self.NH = NH
        self.ln_1 = nn.LayerNorm(C)
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)
        self.register_buffer('mask', torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, 1, T, T), persistent=False)

    def attn(self, x):
        B, T, C = x.shape
        NH = self.NH
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, NH, C // NH).transpose(1, 2)  # (B, NH, T, HS)
        k = k.view(B, T, NH, C // NH).transpose(1, 2)
        v = v.view(B, T, NH, C // NH).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // NH))  # (B, NH, T, T)
        att = att.masked_fill(~self.mask[:, :, :T, :T], float('-inf'))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.attn_proj(y)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh'))
        return x


class GPT(nn.Module):
    def __init__(self, V, maxT, L, NH, C):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(maxT, C)
        self.h = nn.ModuleList([Block(C, NH, maxT) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        # nanoGPT init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), biases 0.
        for name, p in self.named_parameters():
            if name.endswith('proj.weight'):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
            elif p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith('bias'):
                nn.init.zeros_(p)

    def hidden(self, idx):
        """The final hidden states (B, T, C), after ln_f: what the lm head and a task head read."""
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, dtype=torch.long))
        for b in self.h:
            x = b(x)
        return self.ln_f(x)

    def lm_logits(self, x):
        return x @ self.wte.weight.t()  # tied lm head

    def forward(self, idx, targets=None):
        logits = self.lm_logits(self.hidden(idx))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    def ferro_order(self):
        """Parameters in ferrogpt's layout order (paramLayout in src/model/params.ts)."""
        out = [self.wte.weight, self.wpe.weight]
        for b in self.h:
            out += [b.ln_1.weight, b.ln_1.bias, b.c_attn.weight, b.c_attn.bias, b.attn_proj.weight, b.attn_proj.bias,
                    b.ln_2.weight, b.ln_2.bias, b.c_fc.weight, b.c_fc.bias, b.mlp_proj.weight, b.mlp_proj.bias]
        return out + [self.ln_f.weight, self.ln_f.bias]


def build_model(job):
    """The GPT of job['model'], with ferrogpt's weights from job['initWeights'] when given."""
    m = job['model']
    torch.manual_seed(job.get('seed', 1337))
    model = GPT(m['vocabSize'], m['blockSize'], m['nLayer'], m['nHead'], m['nEmbd'])
    if job.get('initWeights'):
        flat = torch.from_file(job['initWeights'], size=sum(p.numel() for p in model.ferro_order()), dtype=torch.float32)
        with torch.no_grad():
            off = 0
            for p in model.ferro_order():
                p.copy_(flat[off:off + p.numel()].view_as(p))
                off += p.numel()
    return model


def adamw(params, o, default_wd=0.1, default_betas=(0.9, 0.99)):
    """torch.optim.AdamW over `params` with weight decay on tensors of rank >= 2 (wte, wpe,
    linear weights, a task head's weight) and not on biases and LayerNorm gains, as nanoGPT
    and ferrogpt (src/train/optimizer.ts)."""
    params = list(params)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    kw = {}
    if o.get('foreach') is not None:
        kw['foreach'] = o['foreach']
    return torch.optim.AdamW([{'params': decay, 'weight_decay': o.get('weightDecay', default_wd)},
                              {'params': no_decay, 'weight_decay': 0.0}],
                             lr=o.get('lr', 1e-3), betas=tuple(o.get('betas', default_betas)), eps=o.get('eps', 1e-8), **kw)


def build(job):
    model = build_model(job)
    return model, adamw(model.parameters(), job.get('optim', {}))


def train_step(model, opt, x, y, clip, autocast=None):
    opt.zero_grad(set_to_none=True)
    if autocast == 'bf16':
        # CPU autocast: matmuls (linear, bmm) in bf16, reductions and the loss in f32.
        with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
            loss = model(x, y)
    else:
        loss = model(x, y)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss


def random_batch(gen, V, B, T):
    x = torch.randint(0, V, (B, T), generator=gen, dtype=torch.long)
    y = torch.randint(0, V, (B, T), generator=gen, dtype=torch.long)
    return x, y


def cmd_bench(job):
    torch.set_num_threads(job['threads'])
    m = job['model']
    B, T, V = job['batch'], m['blockSize'], m['vocabSize']
    model, opt = build(job)
    gen = torch.Generator().manual_seed(1)
    times, cpu = [], []
    for i in range(job['warmup'] + job['steps']):
        x, y = random_batch(gen, V, B, T)
        c0 = time.process_time()
        t0 = time.perf_counter()
        loss = train_step(model, opt, x, y, job.get('clip', 1.0), job.get('autocast'))
        loss.item()
        dt = time.perf_counter() - t0
        if i >= job['warmup']:
            times.append(dt)
            cpu.append(time.process_time() - c0)
    return {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'step_s': times, 'cpu_s': cpu,
            'params': sum(p.numel() for p in model.parameters())}


# Which op kinds the profile groups aten ops into (self CPU time).
KINDS = [
    ('matmul', ('aten::addmm', 'aten::mm', 'aten::matmul', 'aten::linear', 'aten::t')),
    ('attention (bmm, softmax, mask)', ('aten::bmm', 'aten::_softmax', 'aten::_softmax_backward_data', 'aten::masked_fill', 'aten::masked_fill_', 'aten::baddbmm')),
    ('layernorm', ('aten::native_layer_norm', 'aten::native_layer_norm_backward')),
    ('gelu', ('aten::gelu', 'aten::gelu_backward')),
    ('crossentropy', ('aten::_log_softmax', 'aten::_log_softmax_backward_data', 'aten::nll_loss_forward', 'aten::nll_loss_backward')),
    ('embedding', ('aten::embedding', 'aten::embedding_dense_backward', 'aten::index_select', 'aten::embedding_backward')),
]


def cmd_profile(job):
    torch.set_num_threads(job['threads'])
    m = job['model']
    B, T, V = job['batch'], m['blockSize'], m['vocabSize']
    model, opt = build(job)
    gen = torch.Generator().manual_seed(1)
    for _ in range(job['warmup']):
        x, y = random_batch(gen, V, B, T)
        train_step(model, opt, x, y, job.get('clip', 1.0)).item()
    steps = job['steps']
    phase = {'forward': 0.0, 'backward': 0.0, 'clip': 0.0, 'adamw': 0.0, 'zero_grad': 0.0}
    t_all = time.perf_counter()
    with torch.autograd.profiler.profile() as prof:
        for _ in range(steps):
            x, y = random_batch(gen, V, B, T)
            t = time.perf_counter(); opt.zero_grad(set_to_none=True); phase['zero_grad'] += time.perf_counter() - t
            t = time.perf_counter(); loss = model(x, y); phase['forward'] += time.perf_counter() - t
            t = time.perf_counter(); loss.backward(); phase['backward'] += time.perf_counter() - t
            t = time.perf_counter(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); phase['clip'] += time.perf_counter() - t
            t = time.perf_counter(); opt.step(); phase['adamw'] += time.perf_counter() - t
        total = time.perf_counter() - t_all
    kinds = {k: 0.0 for k, _ in KINDS}
    ops = []
    for e in prof.key_averages():
        ms = e.self_cpu_time_total / 1e3 / steps
        ops.append((e.key, ms, e.count // steps))
        for k, names in KINDS:
            if e.key in names:
                kinds[k] += ms
    ops.sort(key=lambda r: -r[1])
    return {'threads': torch.get_num_threads(), 'steps': steps,
            'note': 'profiler on: times include its overhead',
            'step_ms': total * 1e3 / steps,
            'phase_ms': {k: v * 1e3 / steps for k, v in phase.items()},
            'kinds_ms': kinds,
            'top_ops': [{'op': k, 'self_ms': round(ms, 3), 'calls': c} for k, ms, c in ops[:25]]}


def cmd_quality(job):
    torch.set_num_threads(job['threads'])
    m = job['model']
    B, T = job['batch'], m['blockSize']
    model, opt = build(job)
    data = torch.from_file(job['data'], size=job['dataLen'], dtype=torch.int32).long()
    train_off = torch.from_file(job['trainOffsets'], size=job['iters'] * B, dtype=torch.int32).long().view(job['iters'], B)
    val_off = torch.from_file(job['valOffsets'], size=job['valBatches'] * B, dtype=torch.int32).long().view(job['valBatches'], B)
    lrs = job['lrs']
    ar = torch.arange(T + 1)

    def batch(offs):
        w = data[offs.view(-1, 1) + ar.view(1, -1)]  # (B, T+1)
        return w[:, :-1], w[:, 1:]

    @torch.no_grad()
    def val_loss():
        model.eval()
        tot = 0.0
        for j in range(val_off.shape[0]):
            x, y = batch(val_off[j])
            tot += model(x, y).item()
        model.train()
        return tot / val_off.shape[0]

    evals = []
    train_losses = []
    t0 = time.perf_counter()
    for it in range(job['iters']):
        if it % job['evalEvery'] == 0:
            evals.append({'iter': it, 'val': val_loss()})
        for g in opt.param_groups:
            g['lr'] = lrs[it]
        x, y = batch(train_off[it])
        train_losses.append(train_step(model, opt, x, y, job['clip']).item())
    train_s = time.perf_counter() - t0
    evals.append({'iter': job['iters'], 'val': val_loss()})
    return {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'train_losses': train_losses,
            'evals': evals, 'final_val': evals[-1]['val'], 'seconds': train_s}


def cmd_blas(job):
    """Which OpenBLAS kernel set this process runs (OPENBLAS_CORETYPE decides) and its sgemm speed."""
    import ctypes
    core = None
    with open('/proc/self/maps') as f:
        libs = sorted({line.split()[-1] for line in f if 'blas' in line.lower() and '/' in line})
    for lib in libs:
        try:
            l = ctypes.CDLL(lib)
            l.openblas_get_corename.restype = ctypes.c_char_p
            l.openblas_get_config.restype = ctypes.c_char_p
            core = {'corename': l.openblas_get_corename().decode(), 'config': l.openblas_get_config().decode()}
            break
        except (OSError, AttributeError):
            continue
    torch.set_num_threads(1)
    a, b = torch.randn(768, 512), torch.randn(512, 1536)
    for _ in range(3):
        a @ b
    n, t = 10, time.perf_counter()
    for _ in range(n):
        a @ b
    dt = (time.perf_counter() - t) / n
    return {'libs': libs, 'openblas': core, 'sgemm_gflops_1t': 2 * 768 * 512 * 1536 / dt / 1e9}


def main():
    cmd = sys.argv[1]
    job = {}
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            job = json.load(f)
    out = {'blas': cmd_blas, 'bench': cmd_bench, 'profile': cmd_profile, 'quality': cmd_quality}[cmd](job)
    sys.stdout.write(json.dumps(out) + '\n')


if __name__ == '__main__':
    main()
