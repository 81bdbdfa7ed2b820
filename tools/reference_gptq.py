#!/usr/bin/env python3
"""Quantize one layer with llm-compressor's GPTQ: the reference our GPTQ is held against.

Runs inside the reference virtualenv that ``make test-reference`` creates (llm-compressor
pins a transformers that the course's own environment does not use). Input and output go
through .npz files, so the two environments share nothing but numbers:

    input : W (d_out, d_in) float32, H (d_in, d_in) float32 = 2 X^T X / n,
            bits, group_size (0 = per output channel), symmetric, block_size, damp
    output: W_hat (d_out, d_in) float32, loss (llm-compressor's own estimate),
            seconds (time inside quantize_weight), versions (JSON text)

    python tools/reference_gptq.py IN.npz OUT.npz [IN2.npz OUT2.npz ...]

(several pairs in one call: importing llm-compressor takes far longer than a layer.)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+", metavar="IN OUT",
                        help="pairs: an .npz with W, H and the settings, then the .npz to write W_hat, loss, "
                             "seconds, versions to")
    args = parser.parse_args(argv)
    if len(args.files) % 2:
        parser.error(f"give IN OUT pairs; got {len(args.files)} paths")

    for src, dst in zip(args.files[::2], args.files[1::2]):
        _quantize_one(src, dst)
    return 0


def _quantize_one(src: Path, dst: Path) -> None:
    import compressed_tensors
    import llmcompressor
    import numpy as np
    import torch
    from compressed_tensors.quantization import QuantizationArgs, QuantizationStrategy
    from compressed_tensors.quantization.utils import calculate_qparams
    from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight

    data = np.load(src)
    W = torch.from_numpy(data["W"]).float()
    H = torch.from_numpy(data["H"]).float()
    group_size = int(data["group_size"])
    qargs = QuantizationArgs(num_bits=int(data["bits"]), symmetric=bool(data["symmetric"]),
                             strategy=QuantizationStrategy.GROUP if group_size else QuantizationStrategy.CHANNEL,
                             group_size=group_size or None)
    # the observer's job in llm-compressor: min/max of each group (or row) of the unquantized W
    rows, cols = W.shape
    Wg = W.reshape(rows, cols // group_size, group_size) if group_size else W.reshape(rows, 1, cols)
    scale, zero_point = calculate_qparams(Wg.amin(dim=-1), Wg.amax(dim=-1), qargs)  # (rows, n_groups)
    t0 = time.perf_counter()
    W_hat, losses, _ = quantize_weight(W.unsqueeze(0).clone(), H.unsqueeze(0).clone(), scale.unsqueeze(0),
                                       zero_point.unsqueeze(0), None, qargs, blocksize=int(data["block_size"]),
                                       percdamp=float(data["damp"]))
    seconds = time.perf_counter() - t0
    W_hat, loss = W_hat[0], float(losses.sum())

    versions = {"llmcompressor": llmcompressor.__version__, "compressed-tensors": compressed_tensors.__version__,
                "torch": torch.__version__}
    tmp = dst.with_name(dst.name + ".partial.npz")
    np.savez(tmp, W_hat=W_hat.detach().float().numpy(), loss=float(loss), seconds=seconds,
             versions=json.dumps(versions))
    tmp.replace(dst)


if __name__ == "__main__":
    sys.exit(main())
