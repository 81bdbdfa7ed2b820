"""``python -m courseutils``: info, scorecard, quantize, perplexity, types.

Errors in what you typed are reported in one line (``error: ...``) with exit status 2,
never as a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .core.errors import CourseError

__all__ = ["main", "build_parser"]


def _info(args) -> dict:
    import platform

    from .core.config import cache_dir, default_model, get_device
    from .llamacpp.bridge import gpu_offload_supported
    from .llamacpp.loading import load_mode, system_info
    from .model.loader import model_card
    from .scoring.scorecard import versions

    card = model_card("tinycode")
    info = {"versions": versions(), "device": get_device(), "llama_cpp_backend":
            "CUDA" if gpu_offload_supported() else "CPU", "default_model": default_model(),
            "cache": str(cache_dir()), "machine": platform.machine()}
    mode = load_mode()
    info["llama_cpp_load_mode"] = {"use_extra_bufts": mode.use_extra_bufts, "mode": mode.name, "reason": mode.reason}
    info["llama_cpp_system_info"] = system_info()
    info["tinycode"] = {k: card.get(k) for k in ("parameters", "validation_perplexity", "tokens_seen",
                                                  "train_seconds", "date")}
    info["tinycode"]["corpus_sha256"] = card.get("corpus", {}).get("sha256")
    if info["device"] == "cuda" and info["llama_cpp_backend"] == "CPU":
        info["llama_cpp_note"] = ("torch uses the GPU, but this llama-cpp-python is a CPU build, so llama.cpp runs on "
                                  "the CPU; for a CUDA build see the README, 'On Google Colab'")
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        v = info["versions"]
        print(f"python {v['python']} | torch {v['torch']} | transformers {v['transformers']} | "
              f"llama-cpp-python {v['llama-cpp-python']} | gguf {v['gguf']}")
        print(f"torch device: {info['device']} | llama.cpp backend: {info['llama_cpp_backend']} | "
              f"default model: {info['default_model']} | cache: {info['cache']}")
        if "llama_cpp_note" in info:
            print(f"note: {info['llama_cpp_note']}")
        print(f"llama.cpp load mode: {mode.name}; {mode.reason}")
        print(f"llama.cpp system info: {info['llama_cpp_system_info']}")
        t = info["tinycode"]
        print(f"tinycode: {t['parameters']:,} parameters, validation perplexity {t['validation_perplexity']}, "
              f"{t['tokens_seen']:,} tokens seen, trained {t['date']}, corpus {str(t['corpus_sha256'])[:12]}")
    return info


def _scorecard(args) -> None:
    from .scoring.scorecard import Rubric, format_table, run_scorecard, write_json

    rubric = Rubric(max_ppl_increase=args.max_ppl_increase, max_kld=args.max_kld, min_top1=args.min_top1,
                    min_format_following=args.min_format_following, min_task_accuracy=args.min_task_accuracy)
    text = _read_text(args.text) if args.text else None
    card = run_scorecard(args.model, args.types, rubric, text=text, n_ctx=args.ctx, n_chunks=args.chunks,
                         progress=not args.quiet)
    print(format_table(card))
    if args.json:
        write_json(card, args.json)
        print(f"written: {args.json}")


def _quantize(args) -> None:
    from .core.io import check_output_path
    from .llamacpp.bridge import _ftype, check_gguf, quantize

    _ftype(args.type)  # fail early: unknown type
    check_output_path(args.output, "-o/--output")  # fail early: missing directory
    src = Path(args.model)
    imatrix = None
    if args.imatrix:
        if src.suffix == ".gguf":
            raise CourseError("--imatrix needs the Hugging Face model (tinycode, a directory or a hub id), "
                              "not a GGUF file: the activations come from torch")
        from .calib.imatrix import compute_imatrix
        imatrix = compute_imatrix(args.model, progress=True)
    if src.suffix == ".gguf":
        base = check_gguf(src, "MODEL")
    else:
        from .llamacpp.bridge import get_gguf
        base = get_gguf(args.model, "F16")
    out = quantize(base, args.output, args.type, imatrix=imatrix)
    print(f"{out} ({out.stat().st_size / 2**20:.2f} MiB, {args.type})")


def _read_text(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise CourseError(f"--text={path!r}: no such file")
    return p.read_text(encoding="utf-8", errors="replace")


def _perplexity(args) -> None:
    from .scoring.evaluate import perplexity_gguf
    from .scoring.scorecard import write_json

    result = perplexity_gguf(args.gguf, _read_text(args.text), n_ctx=args.ctx, base=args.base,
                             n_chunks=args.chunks, progress=not args.quiet)
    line = f"PPL = {result['ppl']:.4f} over {result['n_scored']} tokens ({result['n_chunks']} chunks of {args.ctx})"
    if args.base:
        line += (f"\nbase PPL = {result['base_ppl']:.4f} | mean KLD = {result['kld']:.6f} | "
                 f"same top token = {100 * result['top1_agreement']:.2f} %")
    print(line)
    if args.json:
        write_json(result, args.json)


def _types(args) -> None:
    from .llamacpp.bridge import IMATRIX_REQUIRED, quant_types

    for t in quant_types():
        print(f"{t:<8}{'  (needs --imatrix)' if t in IMATRIX_REQUIRED else ''}")


def build_parser() -> argparse.ArgumentParser:
    from .scoring.scorecard import DEFAULT_TYPES, Rubric

    parser = argparse.ArgumentParser(prog="python -m courseutils",
                                     description="Quantization from First Principles: course tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="versions, device, llama.cpp backend, model card")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_info)

    p = sub.add_parser("scorecard", help="score a model at several quant types; pick the smallest that passes")
    p.add_argument("--model", default="tinycode", help="tinycode (default), a local HF directory or a hub id")
    p.add_argument("--types", default=",".join(DEFAULT_TYPES), help="comma-separated types, reference first "
                   "(default %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the full scorecard as JSON")
    p.add_argument("--text", metavar="FILE", help="evaluation text (default: tinycode's validation split)")
    p.add_argument("--ctx", type=int, default=256, help="context per chunk (default %(default)s)")
    p.add_argument("--chunks", type=int, default=12, help="chunks to evaluate (default %(default)s)")
    r = Rubric()
    p.add_argument("--max-ppl-increase", type=float, default=r.max_ppl_increase,
                   help="relative perplexity increase allowed (default %(default)s)")
    p.add_argument("--max-kld", type=float, default=r.max_kld, help="mean KLD allowed (default %(default)s)")
    p.add_argument("--min-top1", type=float, default=r.min_top1, help="same-top-token rate (default %(default)s)")
    p.add_argument("--min-format-following", type=float, default=r.min_format_following,
                   help="fraction of valid completions (default %(default)s)")
    p.add_argument("--min-task-accuracy", type=float, default=r.min_task_accuracy,
                   help="cloze accuracy (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_scorecard)

    p = sub.add_parser("quantize", help="quantize a model to a llama.cpp type")
    p.add_argument("model", metavar="MODEL", help="tinycode, a local HF directory, a hub id, or an F16/F32 .gguf")
    p.add_argument("--type", required=True, help="llama.cpp type, e.g. Q4_K_M (see `types`)")
    p.add_argument("--imatrix", action="store_true", help="compute an importance matrix from torch activations "
                   "on the calibration split and use it")
    p.add_argument("-o", "--output", required=True, help="output .gguf path")
    p.set_defaults(func=_quantize)

    p = sub.add_parser("perplexity", help="perplexity (and KLD / top-1 vs a base) as llama-perplexity computes it")
    p.add_argument("gguf", metavar="GGUF", help="model file")
    p.add_argument("--text", required=True, metavar="FILE", help="text file to evaluate")
    p.add_argument("--ctx", type=int, default=256, help="context per chunk (default %(default)s)")
    p.add_argument("--chunks", type=int, default=None, help="evaluate at most this many chunks")
    p.add_argument("--base", metavar="GGUF", help="reference model for KLD and same-top-token rate")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_perplexity)

    p = sub.add_parser("types", help="list the quantization types")
    p.set_defaults(func=_types)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
