# The PEFT side of bench/peft-interop.js: load the base with transformers, put ferrogpt's
# adapter folder on it with PeftModel.from_pretrained, and report how far its class
# probabilities are from ferrogpt's. Prints one JSON line.
import json
import sys

import peft
import torch
import transformers
from peft import PeftModel
from safetensors.torch import load_file
from transformers import GPT2ForSequenceClassification

d = sys.argv[1]
expected = json.load(open(f'{d}/expected.json'))
K = len(expected[0]['probabilities'])
base = GPT2ForSequenceClassification.from_pretrained(f'{d}/base', num_labels=K)
# The adapter's trainable tokens replace embedding rows, so the rows must exist first.
base.resize_token_embeddings(max(max(e['ids']) for e in expected) + 1)
model = PeftModel.from_pretrained(base, f'{d}/adapter').eval()
# GPT-1's head has a bias; HF's score does not, so PEFT skips it: add it here.
bias = load_file(f'{d}/adapter/adapter_model.safetensors')['base_model.model.score.bias'].double()
worst = 0.0
for e in expected:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([e['ids']])).logits[0].double() + bias
    ours = torch.tensor(e['probabilities'], dtype=torch.float64)
    worst = max(worst, (torch.softmax(logits, -1) - ours).abs().max().item())
print(json.dumps({'peft': peft.__version__, 'transformers': transformers.__version__, 'examples': len(expected), 'maxDiff': worst}))
