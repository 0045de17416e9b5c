#!/usr/bin/env python3
"""Exports one of ferrogpt's GPT-2 folders (config.json + model.safetensors, as GPT.save
writes them) to ONNX with a KV cache, for the onnxruntime decode peer of bench:generate.

  bench/.venv-onnx/bin/python bench/onnx-export/export_gpt2.py MODEL_DIR [--out DIR] [--int8]
      [--per-channel | --no-per-channel] [--opset 17] [--threads 1] [--force]

The model is a plain PyTorch GPT-2 written here (transformers is not needed): pre-LN
blocks, ln_f, learned positions, tanh GELU ("gelu_new"), causal attention scaled by
1/sqrt(head size), LayerNorm eps 1e-5, lm head tied to wte. Weights keep the HF Conv1D
layout (C, OC), so a linear layer is x @ W + b.

The ONNX graph (opset 17 by default: LayerNormalization is a single op there):
  inputs   input_ids            (B, T)           int64
           position_ids         (B, T)           int64   absolute positions, P .. P+T-1
           past_key_{i}         (B, NH, P, HS)   float32 one per layer i = 0..L-1
           past_value_{i}       (B, NH, P, HS)   float32 (P = 0 for the prompt step)
  outputs  logits               (B, V)           float32 the LAST position of each row only
           present_key_{i}      (B, NH, P+T, HS) float32 past ++ this step's keys
           present_value_{i}    (B, NH, P+T, HS) float32
B, T and P are dynamic. Per-layer tensors (not one stacked tensor) so that a present can be
fed back as the next past as it is, with no slicing or restacking in the graph. Key j is
visible to query position p when j <= p (keys are at absolute positions 0 .. P+T-1), so
P + T must stay <= blockSize: there is no sliding window.

--int8 also writes model.int8.onnx: onnxruntime.quantization.quantize_dynamic with
QuantType.QInt8 weights (activations quantized per call to uint8), MatMul nodes with a
constant weight only (the linear layers and the lm head; attention's q@k and att@v stay
f32, and so does the embedding Gather). Per-channel (one scale per output column) is the
default: on the check model it is closer to f32 than per-tensor (see bench/README.md).

Both models are checked here against the PyTorch module (full recompute, no cache): the
f32 ONNX last-position logits must match to 1e-4 (times max(1, max |logit|)) on a prompt
step, a one-token decode step and a two-token step; for int8 the max |difference| to f32
and greedy agreement are reported (random weights give near-ties, so int8 may flip some).

Output folder (default bench/data/onnx-gpt2/<first 16 hex of sha256(config.json bytes +
model.safetensors bytes)>): model.onnx, model.int8.onnx (with --int8), meta.json (config,
I/O names, versions, checks, timings, sizes; written last). When meta.json and the asked
for models exist the export is skipped. The last stdout line is one JSON object: the
paths and meta (bench/lib/onnx-decode.js reads it).
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ROOT = os.path.join(HERE, "..", "data", "onnx-gpt2")
EPS = 1e-5


def log(*a):
    print(*a, flush=True)


def write_json(path, obj):
    """Written to a temporary name and renamed: a reader never sees half a file."""
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(path + ".tmp", path)


# ---- reading the folder ----

DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8")}


def read_safetensors(path):
    """{name: float32 numpy array}. A small parser: 8-byte little-endian header length, JSON
    header, raw little-endian data (BF16 widened by hand)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SystemExit(f"export: {path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise SystemExit(f"export: {path}: header length {n} past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf8"))
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        shape = tuple(e["shape"])
        raw = blob[base + b: base + end]
        dt = e["dtype"]
        if dt in DTYPES:
            arr = np.frombuffer(raw, dtype=DTYPES[dt]).astype(np.float32)
        elif dt == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"export: {path}: tensor {name} has dtype {dt} (F32, F16, BF16, F64 are read)")
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise SystemExit(f"export: {path}: tensor {name}: {arr.size} elements for shape {list(shape)}")
        out[name] = arr.reshape(shape)
    return out


def read_model(model_dir):
    cfg_path = os.path.join(model_dir, "config.json")
    st_path = os.path.join(model_dir, "model.safetensors")
    for p in (cfg_path, st_path):
        if not os.path.isfile(p):
            raise SystemExit(f"export: {p} not found (a model folder holds config.json + model.safetensors, as GPT.save writes)")
    with open(cfg_path) as f:
        hf = json.load(f)
    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise SystemExit(f"export: activation_function {act} is not supported (tanh GELU only)")
    if abs(hf.get("layer_norm_epsilon", EPS) - EPS) > 1e-12:
        raise SystemExit(f"export: layer_norm_epsilon {hf['layer_norm_epsilon']} is not supported (1e-5)")
    if (hf.get("ferrogpt") or {}).get("postLN"):
        raise SystemExit("export: postLN (GPT-1 block) models are not supported; this exporter writes pre-LN GPT-2")
    cfg = {
        "vocabSize": hf["vocab_size"],
        "blockSize": hf.get("n_positions", hf.get("n_ctx")),
        "nLayer": hf["n_layer"],
        "nHead": hf["n_head"],
        "nEmbd": hf["n_embd"],
    }
    if cfg["nEmbd"] % cfg["nHead"]:
        raise SystemExit(f"export: n_embd {cfg['nEmbd']} is not a multiple of n_head {cfg['nHead']}")
    raw = read_safetensors(st_path)
    tensors = {}
    lm_head = None
    for name, arr in raw.items():
        if name == "lm_head.weight":
            lm_head = arr
            continue
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        if short.startswith("score.") or short.endswith(".attn.bias") or short.endswith(".attn.masked_bias"):
            continue  # a task head, or old causal-mask buffers
        if short in tensors:
            raise SystemExit(f"export: tensor {short} appears with and without the transformer. prefix")
        tensors[short] = arr
    if lm_head is not None and not np.array_equal(lm_head, tensors.get("wte.weight")):
        raise SystemExit("export: lm_head.weight differs from wte.weight; this exporter ties the lm head to wte")
    return cfg, tensors


def folder_digest(model_dir):
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(os.path.join(model_dir, name), "rb") as f:
            while True:
                chunk = f.read(1 << 24)
                if not chunk:
                    break
                h.update(chunk)
    return h.hexdigest()[:16]


# ---- the PyTorch model ----


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2KV(nn.Module):
    """GPT-2 over a KV cache: forward(input_ids, position_ids, k0, v0, k1, v1, ...) returns
    (last-position logits, present k0, v0, ...). forward_full is the cacheless reference."""

    def __init__(self, cfg, tensors):
        super().__init__()
        self.cfg = cfg
        self.L, self.NH, self.C = cfg["nLayer"], cfg["nHead"], cfg["nEmbd"]
        self.HS = self.C // self.NH
        expected = {"wte.weight": (cfg["vocabSize"], self.C), "wpe.weight": (cfg["blockSize"], self.C), "ln_f.weight": (self.C,)}
        C = self.C
        for i in range(self.L):
            p = f"h.{i}."
            expected.update({p + "ln_1.weight": (C,), p + "attn.c_attn.weight": (C, 3 * C), p + "attn.c_proj.weight": (C, C),
                             p + "ln_2.weight": (C,), p + "mlp.c_fc.weight": (C, 4 * C), p + "mlp.c_proj.weight": (4 * C, C)})
        self.bias = "ln_f.bias" in tensors
        if self.bias:
            expected["ln_f.bias"] = (C,)
            for i in range(self.L):
                p = f"h.{i}."
                expected.update({p + "ln_1.bias": (C,), p + "attn.c_attn.bias": (3 * C,), p + "attn.c_proj.bias": (C,),
                                 p + "ln_2.bias": (C,), p + "mlp.c_fc.bias": (4 * C,), p + "mlp.c_proj.bias": (C,)})
        problems = [f"missing {k} {list(s)}" for k, s in expected.items() if k not in tensors]
        problems += [f"{k} has shape {list(tensors[k].shape)}, expected {list(s)}" for k, s in expected.items() if k in tensors and tuple(tensors[k].shape) != s]
        problems += [f"unexpected tensor {k}" for k in tensors if k not in expected]
        if problems:
            raise SystemExit("export: the safetensors do not fit the config: " + "; ".join(problems))
        # Parameters named with dots replaced (nn.Module names cannot hold dots).
        self.p = nn.ParameterDict({k.replace(".", "_"): nn.Parameter(torch.from_numpy(np.ascontiguousarray(v)), requires_grad=False) for k, v in tensors.items()})

    def w(self, name):
        return self.p[name.replace(".", "_")]

    def b(self, name):
        return self.p[name.replace(".", "_")] if self.bias else None

    def ln(self, x, name):
        return F.layer_norm(x, (self.C,), self.w(name + ".weight"), self.b(name + ".bias"), EPS)

    def linear(self, x, name):
        y = x @ self.w(name + ".weight")
        bias = self.b(name + ".bias")
        return y if bias is None else y + bias

    def block(self, i, x, pk, pv, allowed):
        """One pre-LN block; pk/pv (B, NH, P, HS) the cached keys/values; returns x, k, v."""
        p = f"h.{i}."
        b, t = x.size(0), x.size(1)
        q, k, v = self.linear(self.ln(x, p + "ln_1"), p + "attn.c_attn").split(self.C, dim=2)
        q = q.reshape(b, t, self.NH, self.HS).transpose(1, 2)
        k = torch.cat([pk, k.reshape(b, t, self.NH, self.HS).transpose(1, 2)], dim=2)
        v = torch.cat([pv, v.reshape(b, t, self.NH, self.HS).transpose(1, 2)], dim=2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.HS))  # (B, NH, T, P+T)
        att = att.masked_fill(~allowed, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(b, t, self.C)
        x = x + self.linear(y, p + "attn.c_proj")
        x = x + self.linear(gelu_new(self.linear(self.ln(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
        return x, k, v

    def forward(self, input_ids, position_ids, *past):
        x = F.embedding(input_ids, self.w("wte.weight")) + F.embedding(position_ids, self.w("wpe.weight"))
        # Keys sit at absolute positions 0 .. P+T-1; query at position p sees keys j <= p.
        total = past[0].size(2) + input_ids.size(1)
        key_pos = torch.arange(total, dtype=torch.int64, device=input_ids.device)
        allowed = key_pos.view(1, 1, 1, -1) <= position_ids.unsqueeze(1).unsqueeze(-1)  # (B, 1, T, P+T)
        presents = []
        for i in range(self.L):
            x, k, v = self.block(i, x, past[2 * i], past[2 * i + 1], allowed)
            presents += [k, v]
        last = self.ln(x[:, -1, :], "ln_f")  # (B, C): greedy decoding needs the last position only
        logits = last @ self.w("wte.weight").t()  # tied lm head
        return (logits, *presents)

    def empty_past(self, batch):
        z = torch.zeros(batch, self.NH, 0, self.HS)
        return [z] * (2 * self.L)

    def forward_full(self, ids):
        """Cacheless reference: all of ids at once, last-position logits (B, V)."""
        b, t = ids.shape
        pos = torch.arange(t).unsqueeze(0).expand(b, t)
        return self.forward(ids, pos, *self.empty_past(b))[0]


# ---- export and checks ----


def names(L):
    ins = ["input_ids", "position_ids"] + [f"past_{kv}_{i}" for i in range(L) for kv in ("key", "value")]
    outs = ["logits"] + [f"present_{kv}_{i}" for i in range(L) for kv in ("key", "value")]
    return ins, outs


def export(model, path, opset):
    L = model.L
    ins, outs = names(L)
    b, t, p = 2, 3, 4  # example shapes for tracing (all dynamic in the graph)
    ids = torch.randint(0, model.cfg["vocabSize"], (b, t))
    pos = (torch.arange(t) + p).unsqueeze(0).expand(b, t).contiguous()
    past = [torch.randn(b, model.NH, p, model.HS) * 0.1 for _ in range(2 * L)]
    axes = {"input_ids": {0: "batch", 1: "new"}, "position_ids": {0: "batch", 1: "new"}, "logits": {0: "batch"}}
    for n in ins[2:]:
        axes[n] = {0: "batch", 2: "past"}
    for n in outs[1:]:
        axes[n] = {0: "batch", 2: "total"}
    with torch.no_grad():
        torch.onnx.export(model, (ids, pos, *past), path, input_names=ins, output_names=outs, dynamic_axes=axes,
                          opset_version=opset, do_constant_folding=True)


def session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_step(sess, L, ids, start, past):
    """One run: ids (B, T) numpy int64 at positions start..start+T-1; past: list of 2L numpy
    arrays. Returns (logits (B, V), presents)."""
    ins, outs = names(L)
    b, t = ids.shape
    feeds = {"input_ids": ids, "position_ids": np.broadcast_to(np.arange(start, start + t, dtype=np.int64), (b, t)).copy()}
    for n, a in zip(ins[2:], past):
        feeds[n] = a
    res = sess.run(outs, feeds)
    return res[0], res[1:]


def check_f32(model, sess, seed=0):
    """Prompt step (P = 0, T = 7), one-token step, two-token step, B = 2, against the cacheless
    torch forward. Returns the largest |difference| and the tolerance; raises SystemExit past it."""
    g = torch.Generator().manual_seed(seed)
    V, L = model.cfg["vocabSize"], model.L
    b = 2
    seq = torch.randint(0, V, (b, 10), generator=g)
    past = [np.zeros((b, model.NH, 0, model.HS), np.float32)] * (2 * L)
    worst, report = 0.0, []
    start = 0
    for label, t in (("prompt step (P=0, T=7)", 7), ("decode step (P=7, T=1)", 1), ("two-token step (P=8, T=2)", 2)):
        ids = seq[:, start:start + t]
        logits, past = ort_step(sess, L, ids.numpy(), start, past)
        start += t
        with torch.no_grad():
            ref = model.forward_full(seq[:, :start]).numpy()
        diff = float(np.abs(logits - ref).max())
        tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
        report.append({"step": label, "maxAbsDiff": diff, "tol": tol, "maxAbsLogit": float(np.abs(ref).max())})
        log(f"  f32 {label}: max |onnx - torch| = {diff:.3g} (tolerance {tol:.3g}, max |logit| {np.abs(ref).max():.3g})")
        worst = max(worst, diff / tol)
        if diff > tol:
            raise SystemExit(f"export: check failed: f32 ONNX logits differ from the PyTorch module by {diff:.3g} at the {label} (tolerance {tol:.3g})")
    return report


def greedy(sess, L, NH, HS, prompt, n):
    past = [np.zeros((1, NH, 0, HS), np.float32)] * (2 * L)
    logits, past = ort_step(sess, L, np.array([prompt], np.int64), 0, past)
    toks = []
    for k in range(n):
        nxt = int(np.argmax(logits[0]))
        toks.append(nxt)
        logits, past = ort_step(sess, L, np.array([[nxt]], np.int64), len(prompt) + k, past)
    return toks


def check_int8(model, f32, q8, tokens=16):
    """Logit differences int8 vs f32 on the f32 check's steps, and greedy agreement."""
    L, NH, HS, V = model.L, model.NH, model.HS, model.cfg["vocabSize"]
    g = torch.Generator().manual_seed(1)
    seq = torch.randint(0, V, (2, 8), generator=g).numpy()
    pa = pb = [np.zeros((2, NH, 0, HS), np.float32)] * (2 * L)
    diffs, top1 = [], 0
    for start, t in ((0, 7), (7, 1)):
        la, pa = ort_step(f32, L, seq[:, start:start + t], start, pa)
        lb, pb = ort_step(q8, L, seq[:, start:start + t], start, pb)
        diffs.append(float(np.abs(la - lb).max()))
        top1 += int((la.argmax(-1) == lb.argmax(-1)).sum())
    prompt = [(i * 7919 + 13) % V for i in range(16)]
    ga = greedy(f32, L, NH, HS, prompt, tokens)
    gb = greedy(q8, L, NH, HS, prompt, tokens)
    first = next((i for i, (a, b) in enumerate(zip(ga, gb)) if a != b), tokens)
    # Teacher-forced: the int8 model fed f32's tokens, its argmax compared at each step.
    past = [np.zeros((1, NH, 0, HS), np.float32)] * (2 * L)
    lb, past = ort_step(q8, L, np.array([prompt], np.int64), 0, past)
    forced = 0
    for k in range(tokens):
        forced += int(int(np.argmax(lb[0])) == ga[k])
        lb, past = ort_step(q8, L, np.array([[ga[k]]], np.int64), len(prompt) + k, past)
    r = {"maxAbsDiffPrompt": diffs[0], "maxAbsDiffDecode": diffs[1], "top1AgreeChecks": f"{top1}/4",
         "greedyF32": ga, "greedyInt8": gb, "greedySamePrefix": first, "teacherForcedTop1": f"{forced}/{tokens}"}
    log(f"  int8 vs f32: max |diff| prompt {diffs[0]:.3g}, decode {diffs[1]:.3g}; greedy tokens equal for the first "
        f"{first} of {tokens}; top-1 agreement fed f32's tokens {forced}/{tokens}")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--out", help="output folder (default bench/data/onnx-gpt2/<digest>)")
    ap.add_argument("--int8", action="store_true", help="also write model.int8.onnx (dynamic int8 quantization)")
    ap.add_argument("--per-channel", dest="per_channel", action="store_true", default=True)
    ap.add_argument("--no-per-channel", dest="per_channel", action="store_false")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads for the checks (default 1)")
    ap.add_argument("--force", action="store_true", help="export again even when the outputs exist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import onnx
    import onnxruntime as ort

    model_dir = os.path.abspath(a.model_dir)
    t0 = time.time()
    digest = folder_digest(model_dir) if os.path.isdir(model_dir) else None
    if digest is None:
        raise SystemExit(f"export: {model_dir} is not a folder")
    out = os.path.abspath(a.out or os.path.join(DEFAULT_ROOT, digest))
    f32_path = os.path.join(out, "model.onnx")
    q8_path = os.path.join(out, "model.int8.onnx")
    meta_path = os.path.join(out, "meta.json")
    meta = None
    if os.path.isfile(meta_path) and not a.force:
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("digest") != digest:
            raise SystemExit(f"export: {out} holds the export of another model (digest {meta.get('digest')}, this folder's is {digest}); pick another --out or --force")
    have_f32 = meta is not None and os.path.isfile(f32_path)
    have_q8 = meta is not None and os.path.isfile(q8_path) and meta.get("int8") is not None
    if have_f32 and (have_q8 or not a.int8):
        log(f"export: {out} is up to date (skipped)")
        print(json.dumps({"dir": out, "f32": f32_path, "int8": q8_path if have_q8 else None, "meta": meta, "skipped": True}))
        return

    cfg, tensors = read_model(model_dir)
    model = GPT2KV(cfg, tensors).eval()
    log(f"export: {model_dir}: {cfg}, {sum(v.size for v in tensors.values()) / 1e6:.1f} M parameters, bias {model.bias}; digest {digest}; read in {time.time() - t0:.1f} s")
    os.makedirs(out, exist_ok=True)
    if not have_f32:
        meta = {
            "digest": digest, "modelDir": model_dir, "config": {**cfg, "headSize": model.HS, "bias": model.bias},
            "opset": a.opset, "inputs": names(model.L)[0], "outputs": names(model.L)[1],
            "layout": "per-layer past_key_i/past_value_i (B, NH, P, HS); logits (B, V) of the last position; position_ids (B, T) absolute",
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
            "int8": None,
        }
        t = time.time()
        export(model, f32_path + ".tmp", a.opset)
        meta["exportSeconds"] = round(time.time() - t, 1)
        log(f"export: traced and wrote the f32 graph in {meta['exportSeconds']} s ({os.path.getsize(f32_path + '.tmp') / 1e6:.1f} MB)")
        t = time.time()
        sess = session(f32_path + ".tmp", a.threads)
        meta["checkF32"] = check_f32(model, sess)
        meta["checkF32Seconds"] = round(time.time() - t, 1)
        os.replace(f32_path + ".tmp", f32_path)
        meta["f32Bytes"] = os.path.getsize(f32_path)
        write_json(meta_path, meta)
    if a.int8 and not have_q8:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        t = time.time()
        quantize_dynamic(f32_path, q8_path + ".tmp", weight_type=QuantType.QInt8, per_channel=a.per_channel, op_types_to_quantize=["MatMul"])
        qs = round(time.time() - t, 1)
        log(f"export: quantized (dynamic int8, QInt8 weights, per-channel {a.per_channel}) in {qs} s ({os.path.getsize(q8_path + '.tmp') / 1e6:.1f} MB)")
        t = time.time()
        chk = check_int8(model, session(f32_path, a.threads), session(q8_path + ".tmp", a.threads))
        os.replace(q8_path + ".tmp", q8_path)
        meta["int8"] = {"weightType": "QInt8", "perChannel": a.per_channel, "opTypes": ["MatMul"], "quantizeSeconds": qs,
                        "checkSeconds": round(time.time() - t, 1), "bytes": os.path.getsize(q8_path), "check": chk}
        write_json(meta_path, meta)
    log(f"export: done in {time.time() - t0:.1f} s: {out}")
    print(json.dumps({"dir": out, "f32": f32_path, "int8": q8_path if meta.get("int8") else None, "meta": meta, "skipped": False}))


if __name__ == "__main__":
    main()
