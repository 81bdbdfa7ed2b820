"""The quantization scorecard: run one model at several quant types, score each, pick the smallest that passes.

For every variant: file size, bits per weight, memory to load, tokens/s, perplexity, KLD
and top-1 agreement against the first (reference) variant, format following and cloze
task accuracy. A :class:`Rubric` turns the numbers into pass/fail; the answer is the
smallest file that passes. Provenance (hashes, versions, date, corpus) is recorded so a
scorecard can be reproduced and checked later.

Every quality number comes with a 95 % paired bootstrap interval
(:mod:`courseutils.numerics.bootstrap`): perplexity change and KLD resample the evaluation
chunks (paired with the reference's), top-1 agreement too; format following and its
difference from the reference resample the prompts; cloze accuracy resamples the scored
positions. The interval keys are new keys beside the stable ones (``ppl``, ``kld`` ...).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..core.errors import CourseError
from ..core.io import atomic_path
from ..llamacpp.bridge import LlamaCpp, get_gguf, quant_types
from ..model.corpus import corpus_text
from ..numerics.bootstrap import mean_ci, ppl_diff_ci
from ..numerics.metrics import make_chunks, perplexity, token_nll
from .evaluate import compare_logits, scored_logits
from .tasks import cloze_accuracy, follows_format, function_prompts

__all__ = ["Rubric", "DEFAULT_TYPES", "smallest_passing", "run_scorecard", "format_table", "gguf_bpw", "sha256_file", "write_json", "versions"]

DEFAULT_TYPES = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M")
CI_LEVEL, CI_N_BOOT, CI_SEED = 0.95, 2000, 0


@dataclass(frozen=True)
class Rubric:
    """Pass/fail thresholds; every variant is compared with the first (reference) one."""
    max_ppl_increase: float = 0.02      # relative: 0.02 = at most 2 % above the reference perplexity
    max_kld: float = 0.02               # mean KL divergence from the reference, nats per token
    min_top1: float = 0.90              # same top token as the reference at >= 90 % of positions
    min_format_following: float = 0.0   # absolute fraction of completions that are valid Python
    min_task_accuracy: float = 0.0      # absolute cloze accuracy

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise CourseError(f"rubric {name}={value!r}; allowed: a finite number >= 0")
        for name in ("min_top1", "min_format_following", "min_task_accuracy"):
            if getattr(self, name) > 1:
                raise CourseError(f"rubric {name}={getattr(self, name)!r}; allowed: a fraction from 0 to 1")

    def check(self, row: dict, ref: dict) -> dict:
        """Which criteria ``row`` meets, given the reference row.

        A row whose ``format_following`` or ``task_accuracy`` is missing or None was not
        measured on that task (the capstone's rows, :mod:`.decision`): the criterion is left
        out when its minimum is 0, and refused (:class:`CourseError`) when the rubric asks for more.
        """
        out = {
            "ppl": row["ppl"] <= ref["ppl"] * (1 + self.max_ppl_increase),
            "kld": row["kld"] <= self.max_kld,
            "top1": row["top1_agreement"] >= self.min_top1,
        }
        for name, minimum in (("format_following", self.min_format_following),
                              ("task_accuracy", self.min_task_accuracy)):
            if row.get(name) is None:
                if minimum > 0:
                    raise CourseError(f"rubric min_{name}={minimum!r} but row {row.get('type', row.get('label'))!r} "
                                      f"has no {name} measured; allowed: min_{name}=0 for such rows")
                continue
            out[name] = row[name] >= minimum
        return out


def smallest_passing(rows: list[dict], rubric: Rubric) -> str | None:
    """The type of the smallest file among ``rows`` that passes ``rubric`` (the first row is
    the reference), or None. Only compares stored numbers; nothing is re-measured."""
    if not rows:
        raise CourseError("rows is empty: nothing to choose from")
    passing = [r for r in rows if all(rubric.check(r, rows[0]).values())]
    return min(passing, key=lambda r: r["file_bytes"])["type"] if passing else None


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gguf_bpw(path: str | os.PathLike) -> float:
    """Bits per weight of a GGUF: tensor bytes × 8 / number of weights (metadata excluded)."""
    from ..ggml.ggufinfo import read_gguf

    return read_gguf(path).bpw


def versions() -> dict:
    """Python, platform and the versions of the packages a score depends on (for provenance)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("llama-cpp-python", "gguf", "torch", "transformers", "numpy", "courseutils"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def run_scorecard(model: str = "tinycode", types=DEFAULT_TYPES, rubric: Rubric = Rubric(), text: str | None = None,
                  n_ctx: int = 256, n_chunks: int = 12, n_prompts: int = 48, max_tokens: int = 48,
                  device: str | None = None, progress: bool = True) -> dict:
    """Score ``model`` at each of ``types`` (the first one is the reference).

    Args:
        model: ``"tinycode"``, a local HF directory or a hub id.
        types: llama.cpp type names; the first is the reference for KLD / top-1 / rubric.
        text: evaluation text (default: tinycode's validation split; its second half is
            the cloze set, its first half the perplexity text).
        n_ctx, n_chunks: perplexity chunking (llama-perplexity style).
        n_prompts, max_tokens: format-following prompts and completion length.
    Returns:
        A JSON-ready dict: ``variants`` (one row per type), ``rubric``,
        ``smallest_passing`` and ``provenance``. Each row also holds 95 % bootstrap
        intervals ``[low, high]``: ``ppl_change`` (PPL / PPL_ref - 1) with ``ppl_change_ci``,
        ``kld_ci``, ``top1_agreement_ci``, ``format_following_ci``, ``format_following_diff``
        (minus the reference's, paired by prompt) with ``format_following_diff_ci``, and
        ``task_accuracy_ci``; ``settings["ci"]`` says how they were drawn. ``buffer_bytes``
        is what llama.cpp reported allocating at load, per part (``model``, ``kv``,
        ``output``, ``compute``, ``total``; :meth:`LlamaCpp.buffer_sizes`), while ``load_bytes``
        stays weights + KV cache.
    """
    from tqdm.auto import tqdm

    from ..model.loader import model_card, resolve_model

    types = [t.upper() for t in (types.split(",") if isinstance(types, str) else types)]
    unknown = [t for t in types if t not in quant_types()]
    if not types or unknown:
        raise CourseError(f"types={types!r}: unknown {unknown}; allowed: {', '.join(quant_types())}")
    text = corpus_text("validation") if text is None else text
    if not text.strip():
        raise CourseError("text is empty: give the evaluation text")
    half = len(text) // 2
    ppl_text, cloze_text = text[:half], text[half:]
    prompts = function_prompts(n_prompts)

    rows, ref_logits, t_start = [], None, time.time()
    per_unit = []  # per variant: nll (n_chunks, T), kld (n_chunks, T), same_top, format ok per prompt, cloze hits
    for qtype in tqdm(types, desc="scorecard", disable=not progress):
        path = get_gguf(model, qtype)
        llm = LlamaCpp(path, n_ctx=n_ctx, device=device)
        load_bytes = llm.memory_bytes()["total"]
        buffers = llm.buffer_sizes()  # what llama.cpp allocated at load, per part

        chunks = make_chunks(llm.tokenize(ppl_text), n_ctx, llm.bos_id, n_chunks)
        t0 = time.perf_counter()
        scored = list(scored_logits(llm, chunks))
        prompt_tps = chunks.size / (time.perf_counter() - t0)
        logits = np.concatenate([s[0] for s in scored])
        targets = np.concatenate([s[1] for s in scored])
        ppl = perplexity(token_nll(logits, targets))
        if ref_logits is None:
            ref_logits = logits
        cmp = compare_logits(ref_logits, logits)

        cloze_chunks = make_chunks(llm.tokenize(cloze_text), n_ctx, llm.bos_id, n_chunks)
        contexts = [llm.detokenize(c[1: n_ctx // 2 + 1]) for c in cloze_chunks]
        task = cloze_accuracy(scored_logits(llm, cloze_chunks), llm.detokenize, contexts, keep_hits=True)

        t0, n_generated, ok = time.perf_counter(), 0, []
        for p in prompts:
            completion = llm.generate(p, max_tokens=max_tokens)
            n_generated += len(llm.tokenize(completion, add_bos=False))
            ok.append(follows_format(p, completion))
        gen_tps = n_generated / (time.perf_counter() - t0)
        llm.close()
        n_chunk = len(chunks)
        per_unit.append({"nll": token_nll(logits, targets).reshape(n_chunk, -1),
                         "kld": cmp["kld"].reshape(n_chunk, -1), "same_top": cmp["same_top"].reshape(n_chunk, -1),
                         "ok": np.array(ok, dtype=np.float64), "hits": np.array(task["hits"], dtype=np.float64)})

        rows.append({
            "type": qtype, "file_bytes": Path(path).stat().st_size, "bpw": round(gguf_bpw(path), 4),
            "load_bytes": load_bytes, "tokens_per_second": round(gen_tps, 1),
            "prompt_tokens_per_second": round(prompt_tps, 1), "ppl": round(ppl, 4),
            "kld": float(f"{cmp['kld'].mean():.6g}"), "top1_agreement": round(float(cmp["same_top"].mean()), 4),
            "format_following": round(float(np.mean(ok)), 4), "task_accuracy": round(task["accuracy"], 4),
            "task_n": task["n"], "sha256": sha256_file(path), "path": str(path),
            "buffer_bytes": {part: sum(v.values()) for part, v in buffers.items() if part != "total"}
            | {"total": buffers["total"]},
        })

    ref = rows[0]
    for row, unit in zip(rows, per_unit):
        row.update(_intervals(unit, per_unit[0]))
        row["criteria"] = rubric.check(row, ref)
        row["passes"] = all(row["criteria"].values())
    smallest = smallest_passing(rows, rubric)
    kind, where = resolve_model(model)
    card = model_card(model) if kind != "hub" else {}
    return {
        "model": str(model), "reference": ref["type"], "variants": rows, "rubric": asdict(rubric),
        "smallest_passing": smallest,
        "settings": {"n_ctx": n_ctx, "n_chunks": n_chunks, "n_prompts": n_prompts, "max_tokens": max_tokens,
                     "scored_tokens": int(len(ref_logits)), "prompts": len(prompts),
                     "ci": {"level": CI_LEVEL, "n_boot": CI_N_BOOT, "seed": CI_SEED, "method": "percentile bootstrap",
                            "units": {"ppl_change": "chunk (paired)", "kld": "chunk", "top1_agreement": "chunk",
                                      "format_following": "prompt", "format_following_diff": "prompt (paired)",
                                      "task_accuracy": "cloze position"}}},
        "provenance": {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "versions": versions(), "model_source": where,
                       "corpus_sha256": card.get("corpus", {}).get("sha256"),
                       "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                       "seconds": round(time.time() - t_start, 1)},
    }


def _ci(interval) -> list[float]:
    return [float(f"{interval.low:.6g}"), float(f"{interval.high:.6g}")]


def _intervals(unit: dict, ref: dict) -> dict:
    """Bootstrap intervals of one variant's quality numbers (``ref``: the reference's arrays)."""
    kw = {"level": CI_LEVEL, "n_boot": CI_N_BOOT, "seed": CI_SEED}
    dppl = ppl_diff_ci(ref["nll"], unit["nll"], **kw)
    ff_diff = mean_ci(unit["ok"] - ref["ok"], unit="token", **kw)
    return {
        "ppl_change": float(f"{dppl.estimate:.6g}"), "ppl_change_ci": _ci(dppl),
        "kld_ci": _ci(mean_ci(unit["kld"], **kw)),
        "top1_agreement_ci": _ci(mean_ci(unit["same_top"], **kw)),
        "format_following_ci": _ci(mean_ci(unit["ok"], unit="token", **kw)),
        "format_following_diff": float(f"{ff_diff.estimate:.6g}"), "format_following_diff_ci": _ci(ff_diff),
        "task_accuracy_ci": _ci(mean_ci(unit["hits"], unit="token", **kw)),
    }


def format_table(card: dict) -> str:
    """The scorecard as a fixed-width text table (what ``python -m courseutils scorecard`` prints).

    Brackets hold the 95 % bootstrap interval of the number before them (rows of a card
    made before the intervals existed print without them).
    """
    def iv(r, key, fmt, scale=1.0):
        lo_hi = r.get(key + "_ci")
        return f"[{fmt.format(scale * lo_hi[0])},{fmt.format(scale * lo_hi[1])}]" if lo_hi else ""

    head = f"{'type':<8}{'MiB':>7}{'bpw':>7}{'load MiB':>9}{'tok/s':>7}{'ppl':>9}{'dPPL %':>8}{'[95% CI]':>17}" \
           f"{'KLD':>9}{'[95% CI]':>19}{'top1':>7}{'format':>7}{'[95% CI]':>13}{'task':>7}  pass"
    lines = [head, "-" * len(head)]
    ref_ppl = card["variants"][0]["ppl"]
    for r in card["variants"]:
        dppl = r.get("ppl_change", r["ppl"] / ref_ppl - 1)
        lines.append(f"{r['type']:<8}{r['file_bytes'] / 2**20:>7.2f}{r['bpw']:>7.2f}{r['load_bytes'] / 2**20:>9.1f}"
                     f"{r['tokens_per_second']:>7.0f}{r['ppl']:>9.4f}{100 * dppl:>+8.2f}"
                     f"{iv(r, 'ppl_change', '{:+.2f}', 100):>17}{r['kld']:>9.5f}{iv(r, 'kld', '{:.5f}'):>19}"
                     f"{r['top1_agreement']:>7.3f}{r['format_following']:>7.2f}{iv(r, 'format_following', '{:.2f}'):>13}"
                     f"{r['task_accuracy']:>7.3f}  {'yes' if r['passes'] else 'no'}")
    lines.append(f"smallest passing variant: {card['smallest_passing'] or 'none'}")
    return "\n".join(lines)


def write_json(obj: dict, out: str | os.PathLike) -> Path:
    """Write JSON atomically (:func:`~courseutils.core.io.atomic_path`)."""
    with atomic_path(out, "json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
    return Path(out)
