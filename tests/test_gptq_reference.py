"""Our GPTQ against llm-compressor's, on the same tinycode layers, Hessians and settings.

Runs under ``make test-reference`` only (marker ``reference``): llm-compressor needs its own
virtualenv (it pins an older transformers), whose python is passed in
``COURSE_REFERENCE_PYTHON``. The two sides exchange .npz files (tools/reference_gptq.py).
Results, with versions and times, go to benchmarks/gptq_reference.json, which lesson 06 reads.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import numpy as np
import pytest
import torch

from courseutils.algorithms.gptq import gptq_quantize, layer_error
from courseutils.algorithms.quantizer import QuantSpec

pytestmark = pytest.mark.reference

LAYERS = ["model.layers.0.self_attn.q_proj", "model.layers.2.mlp.down_proj", "model.layers.5.mlp.up_proj"]
SPECS = [QuantSpec(4, 128), QuantSpec(3, 128), QuantSpec(4, None), QuantSpec(3, None)]


@pytest.fixture(scope="module")
def reference_python():
    python = os.environ.get("COURSE_REFERENCE_PYTHON")
    if not python:
        pytest.fail("COURSE_REFERENCE_PYTHON is not set: run these tests with `make test-reference`")
    return python


@pytest.fixture(scope="module")
def hessians(tinycode):
    from courseutils.calib.hessian import layer_hessians
    from courseutils.calib.hooks import calibration_tokens

    model, tokenizer = tinycode
    tokens = calibration_tokens(tokenizer, n_seq=16, seq_len=256)
    H = layer_hessians(model, tokens, layers=LAYERS, progress=False)
    W = {n: model.get_submodule(n).weight.detach().float() for n in LAYERS}
    return W, {n: h.float() for n, h in H.items()}


def test_our_gptq_is_within_one_percent_of_llm_compressors(root, tmp_path, reference_python, hessians):
    W_all, H_all = hessians
    cases = [(name, spec) for name in LAYERS for spec in SPECS]
    pairs = []
    for k, (name, spec) in enumerate(cases):
        src, out = tmp_path / f"{k}.in.npz", tmp_path / f"{k}.out.npz"
        np.savez(src, W=W_all[name].numpy(), H=H_all[name].numpy(), bits=spec.bits, group_size=spec.group_size or 0,
                 symmetric=spec.symmetric, block_size=128, damp=0.01)
        pairs += [str(src), str(out)]
    proc = subprocess.run([reference_python, str(root / "tools" / "reference_gptq.py"), *pairs],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = []
    for k, (name, spec) in enumerate(cases):
        W, H = W_all[name], H_all[name]
        ref = np.load(tmp_path / f"{k}.out.npz")
        t0 = time.perf_counter()
        ours = gptq_quantize(W, H, spec, static_groups=True)  # llm-compressor fixes group scales first
        ours_s = time.perf_counter() - t0
        dynamic = gptq_quantize(W, H, spec)  # the GPTQ paper's groups, fitted as they are reached
        rows.append({"layer": name, "spec": spec.label(),
                     "error_ours": layer_error(W, ours.W_hat, H),
                     "error_ours_dynamic_groups": layer_error(W, dynamic.W_hat, H),
                     "error_reference": layer_error(W, torch.from_numpy(ref["W_hat"]), H),
                     "seconds_ours": round(ours_s, 4), "seconds_reference": round(float(ref["seconds"]), 4)})
    out = tmp_path / "0.out.npz"
    versions = json.loads(str(np.load(out)["versions"]))
    result = {"reference": versions, "settings": {"block_size": 128, "damp": 0.01, "calibration": "16 x 256 tokens"},
              "rows": rows}
    (root / "benchmarks" / "gptq_reference.json").write_text(json.dumps(result, indent=2) + "\n")
    off = [r for r in rows if abs(r["error_ours"] / r["error_reference"] - 1) > 0.01]
    assert not off, f"more than 1 % from llm-compressor: {off}"
