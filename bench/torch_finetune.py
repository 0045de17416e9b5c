#!/usr/bin/python3
# The PyTorch peer of ferrogpt's `finetune` (src/train/finetune.ts), for
# bench/finetune-parity.js: GPT-1's supervised fine-tuning, written independently in PyTorch
# on the GPT of bench/torch_train.py (the same file the pre-training comparison uses), from
# ferrogpt's starting weights, over ferrogpt's batches, at ferrogpt's learning rates.
#
#   /usr/bin/python3 bench/torch_finetune.py JOB.json   -> JSON on stdout
#
# What it computes per update (dropout 0 everywhere: masks cannot match across frameworks):
#
#   h      = GPT.hidden(ids)                        (S, T, C), after ln_f
#   feat   = h[rowA] (+ h[rowB] for similarity)     (F, C): the extract rows (ferrogpt's poolFor)
#   logits = feat · W_yᵀ + b_y                      (F, K) nn.Linear(C, K)
#   L2     = mean cross-entropy over the examples: classes (E, K), or for choice the (E·k, 1)
#            scores viewed as (E, k), softmax over the choices; MSE for a regression
#   L1     = mean next-token cross-entropy over every counted target of the batch (the
#            targets are -1 at each sequence's last token and in the padding)
#   L3     = L2 + λ·L1 (L2 when λ = 0)
#   backward; clip_grad_norm_ over model and head together; AdamW (decay on rank >= 2:
#   wte, wpe, linear weights, W_y; not biases, LayerNorm gains, b_y) at the given lr.
#
# JOB.json (written by bench/finetune-parity.js): the model shape, the starting weights
# (ferrogpt's parameter buffer after prepareForTask, float32) and head (W_y then b_y,
# float32), the token ids / L1 targets of every batch (int32, one file each, batches back
# to back), and per update its shape, pooled rows, gold labels or scores, and lr; the
# validation batches likewise and the updates after which to evaluate (0: before training).

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from torch_train import adamw, build_model  # noqa: E402


def load_i32(path, n):
    return torch.from_file(path, size=n, dtype=torch.int32).long() if n > 0 else torch.zeros(0, dtype=torch.long)


class Data:
    """The batches of one split: ids and targets back to back, and their metadata."""

    def __init__(self, files, batches):
        n = files['len']
        self.ids = load_i32(files['ids'], n)
        self.targets = load_i32(files['targets'], n)
        self.batches = batches

    def get(self, b):
        S, T, off = b['S'], b['T'], b['offset']
        return self.ids[off:off + S * T].view(S, T), self.targets[off:off + S * T].view(S, T)


def check_batches(job, data, where):
    """Checks the batches ferrogpt handed over against GPT-1's input format, independently of
    ferrogpt's code: every sequence is start ... extract with the task's number of delimiters,
    the pooled row is its extract token, and the L1 targets are the next tokens up to it and
    -1 after. Returns the problems found (an empty list: none)."""
    tok = job['tokens']
    delims = {'classification': 0, 'entailment': 1, 'similarity': 1, 'choice': 1}[job['task']['type']]
    problems = []
    for n, b in enumerate(data.batches):
        ids, targets = data.get(b)
        S, T = ids.shape
        rows = b['rowA'] + (b['rowB'] or [])
        ext = {r // T: r % T for r in rows}
        if sorted(ext) != list(range(S)):
            problems.append(f'{where} batch {n}: the pooled rows {rows} do not cover each sequence once')
            continue
        for s in range(S):
            x = ext[s]
            seq = ids[s, :x + 1].tolist()
            if seq[0] != tok['start'] or seq[-1] != tok['extract'] or seq.count(tok['delim']) != delims or tok['extract'] in seq[:-1] or tok['start'] in seq[1:]:
                problems.append(f'{where} batch {n} sequence {s}: not start…extract with {delims} delimiter(s): {seq}')
            want = ids[s, 1:x + 1].tolist() + [-1] * (T - x)
            if targets[s].tolist() != want:
                problems.append(f'{where} batch {n} sequence {s}: L1 targets are not the next tokens up to the extract token and -1 after')
        if len(problems) > 20:
            break
    return problems


def head_outputs(model, head, b, ids):
    """Hidden states and the head's outputs of batch b (the rows ferrogpt pools)."""
    h = model.hidden(ids)  # (S, T, C)
    flat = h.reshape(-1, h.shape[-1])
    feat = flat[torch.tensor(b['rowA'], dtype=torch.long)]
    if b.get('rowB') is not None:
        feat = feat + flat[torch.tensor(b['rowB'], dtype=torch.long)]
    return h, head(feat)  # (F, K)


def task_loss(job, b, out):
    """L2 of one batch: cross-entropy over classes or choices, or MSE."""
    if job['task']['regression']:
        scores = torch.tensor(b['scores'], dtype=torch.float32)
        keep = ~torch.isnan(scores)
        return F.mse_loss(out.view(-1)[keep], scores[keep])
    E = b['E']
    logits = out.view(E, b['k']) if job['task']['type'] == 'choice' else out  # (E, K)
    return F.cross_entropy(logits, torch.tensor(b['labels'], dtype=torch.long), ignore_index=-1)


@torch.no_grad()
def evaluate(job, model, head, data):
    """Accuracy (classes, choices) or MSE (regression), the mean loss, F1 of class 1 for two
    classes, and the predicted indices; as ferrogpt's FineTunedGPT.evaluate computes them."""
    model.eval()
    head.eval()
    preds, gold, loss_sum, n = [], [], 0.0, 0
    reg = job['task']['regression']
    for b in data.batches:
        ids, _ = data.get(b)
        _, out = head_outputs(model, head, b, ids)
        if reg:
            y = out.view(-1).double()
            s = torch.tensor(b['scores'], dtype=torch.float64)
            preds += y.tolist()
            loss_sum += float(((y - s) ** 2).sum())
            n += len(b['scores'])
            continue
        E = b['E']
        width = b['k'] if job['task']['type'] == 'choice' else out.shape[1]
        logp = F.log_softmax(out.view(E, width).double(), dim=1)
        lab = torch.tensor(b['labels'], dtype=torch.long)
        preds += logp.argmax(dim=1).tolist()
        gold += lab.tolist()
        loss_sum -= float(logp.gather(1, lab.view(-1, 1)).clamp_min(math.log(1e-30)).sum())
        n += E
    model.train()
    head.train()
    if reg:
        return {'count': n, 'mse': loss_sum / n, 'loss': loss_sum / n, 'predictions': preds}
    m = {'count': n, 'accuracy': sum(int(p == g) for p, g in zip(preds, gold)) / n, 'loss': loss_sum / n, 'predictions': preds}
    if job['task']['type'] != 'choice' and job['head']['K'] == 2:
        tp = sum(1 for p, g in zip(preds, gold) if p == 1 and g == 1)
        fp = sum(1 for p, g in zip(preds, gold) if p == 1 and g != 1)
        fn = sum(1 for p, g in zip(preds, gold) if p != 1 and g == 1)
        m['f1'] = 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)
    return m


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    torch.set_num_threads(job.get('threads', 1))
    model = build_model(job)
    C, K = job['model']['nEmbd'], job['head']['K']
    head = nn.Linear(C, K)
    w = torch.from_file(job['head']['weights'], size=K * C + K, dtype=torch.float32)
    with torch.no_grad():
        head.weight.copy_(w[:K * C].view(K, C))
        head.bias.copy_(w[K * C:])
    params = list(model.parameters()) + list(head.parameters())
    o = job['optim']
    opt = adamw(params, o, default_wd=0.01, default_betas=(0.9, 0.999))
    lam, clip = job['lambda'], job['clip']
    train = Data(job['train'], job['steps'])
    val = Data(job['validation'], job['validation']['batches']) if job.get('validation') else None
    eval_at = set(job['validation']['evalAt']) if val else set()
    problems = check_batches(job, train, 'train') + (check_batches(job, val, 'validation') if val else [])

    evals = []
    if 0 in eval_at:
        evals.append({'step': 0, **evaluate(job, model, head, val)})
    steps = []
    for i, b in enumerate(train.batches):
        ids, targets = train.get(b)
        opt.zero_grad(set_to_none=True)
        h, out = head_outputs(model, head, b, ids)
        l2 = task_loss(job, b, out)
        if lam > 0:
            lm = model.lm_logits(h)
            l1 = F.cross_entropy(lm.view(-1, lm.shape[-1]), targets.reshape(-1), ignore_index=-1)
            loss = l2 + lam * l1
        else:
            l1 = None
            loss = l2
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float('inf'))
        for g in opt.param_groups:
            g['lr'] = b['lr']
        opt.step()
        steps.append({'loss': loss.item(), 'l2': l2.item(), 'l1': l1.item() if l1 is not None else None, 'gradNorm': norm.item()})
        if i + 1 in eval_at:
            evals.append({'step': i + 1, **evaluate(job, model, head, val)})
    sys.stdout.write(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'batchProblems': problems, 'steps': steps, 'evals': evals}) + '\n')


if __name__ == '__main__':
    main()
