"""Choosing a quantized variant under a rubric, and saying why, from paired intervals.

The capstone (lesson 10) scores many variants of one model on the same held-out chunks:
llama.cpp files (against the F16 file) and torch fake-quantized models (against the
unquantized torch model). :func:`variant_row` turns one variant's per-token scores
(:class:`~courseutils.scoring.torch_eval.TokenScores`) into a scorecard row with 95 %
bootstrap intervals (:mod:`courseutils.numerics.bootstrap`, chunks resampled):

- ``ppl_change`` = PPL / PPL_base - 1 (paired over chunks, :func:`~courseutils.numerics.bootstrap.ppl_diff_ci`),
- ``kld`` = mean KL divergence from the base, and ``top1_agreement`` (:func:`~courseutils.numerics.bootstrap.mean_ci`).

The rubric (:class:`~courseutils.scoring.scorecard.Rubric`, lesson 03) decides on the
estimates, exactly as the scorecard does (``passes``); a row is ``clear`` when it also passes
at the unfavourable end of every interval (upper end of PPL change and KLD, lower end of
top-1 agreement), so that a re-run on other text would very likely pass too.

:func:`choose` picks the smallest passing row among the eligible kinds (files, by default)
and returns a :class:`Decision` whose ``reasons`` are sentences computed from the numbers:
why the choice passes (and whether clearly), why each smaller variant fails (and whether
clearly), and what the next larger passing variant would buy (a paired KLD difference;
"indistinguishable" when its interval covers 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.errors import CourseError
from ..numerics.bootstrap import Interval, mean_ci, ppl_diff_ci
from .scorecard import Rubric
from .torch_eval import TokenScores

__all__ = ["KINDS", "variant_row", "Decision", "choose", "format_rows"]

#: What a row is: a GGUF file llama.cpp loads (its size is the file's), or a torch model with
#: fake-quantized weights (its size is an estimate of a file nobody wrote).
KINDS = ("gguf", "torch")


def _ci(iv: Interval) -> list[float]:
    return [float(iv.low), float(iv.high)]


def variant_row(label: str, scores: TokenScores, size_bytes: float, n_weights: int, kind: str = "gguf",
                rubric: Rubric = Rubric(), n_boot: int = 2000, seed: int = 0) -> dict:
    """One scorecard row with 95 % paired bootstrap intervals, judged by ``rubric``.

    Args:
        label: the variant's name (``"Q4_K_M+im"``, ``"GPTQ w4 g128"`` ...).
        scores: per-token ``nll``, ``base_nll``, ``kld`` and ``same_top``, each ``(n_chunks, n_scored)``,
            against the variant's base (F16 for files, the float model for torch).
        size_bytes: file size (or, for ``kind="torch"``, the estimated size).
        n_weights: parameters counted in ``bpw = 8 * size_bytes / n_weights``.
        kind: one of :data:`KINDS`.

    Returns:
        A dict: ``label``, ``kind``, ``file_bytes``, ``bpw``, ``ppl``, ``base_ppl``, ``ppl_change``
        with ``ppl_change_ci``, ``kld`` with ``kld_ci``, ``top1_agreement`` with
        ``top1_agreement_ci``, ``criteria`` (rubric criterion -> met on the estimate),
        ``passes`` (all met), ``clear`` (all met at the interval's unfavourable end) and
        ``_scores`` (the per-token arrays, for paired comparisons; not JSON).
    """
    if kind not in KINDS:
        raise CourseError(f"kind={kind!r}; allowed: {', '.join(KINDS)}")
    if scores.base_nll is None or scores.kld is None or scores.same_top is None:
        raise CourseError(f"scores of {label!r} have no reference: score them with a base (evaluate_ggufs, "
                          "or score_torch(..., base=model))")
    if not np.isfinite(size_bytes) or size_bytes <= 0:
        raise CourseError(f"size_bytes={size_bytes!r} for {label!r}; allowed: a positive number of bytes")
    if not isinstance(n_weights, (int, np.integer)) or n_weights < 1:
        raise CourseError(f"n_weights={n_weights!r}; allowed: a positive integer")
    kw = {"n_boot": n_boot, "seed": seed}
    dppl = ppl_diff_ci(scores.base_nll, scores.nll, **kw)
    kld = mean_ci(scores.kld, **kw)
    top1 = mean_ci(scores.same_top.astype(np.float64), **kw)
    base_ppl = float(np.exp(scores.base_nll.mean()))
    row = {"label": label, "kind": kind, "file_bytes": float(size_bytes), "bpw": 8.0 * size_bytes / n_weights,
           "ppl": scores.ppl, "base_ppl": base_ppl,
           "ppl_change": dppl.estimate, "ppl_change_ci": _ci(dppl),
           "kld": kld.estimate, "kld_ci": _ci(kld),
           "top1_agreement": top1.estimate, "top1_agreement_ci": _ci(top1),
           "format_following": None, "task_accuracy": None}  # not measured here (lesson 03's scorecard does)
    row["criteria"] = rubric.check(row, {"ppl": base_ppl})
    row["passes"] = all(row["criteria"].values())
    row["clear"] = row["passes"] and all(_worst_end_meets(row, rubric).values())
    row["_scores"] = scores
    return row


def _bounds(row: dict, name: str, rubric: Rubric) -> tuple[float, float, float, bool] | None:
    """``(low, high, limit, lower_is_better)`` of a quality criterion of ``row``; None for one without an interval."""
    if name == "ppl":
        return (*row["ppl_change_ci"], rubric.max_ppl_increase, True)
    if name == "kld":
        return (*row["kld_ci"], rubric.max_kld, True)
    if name == "top1":
        return (*row["top1_agreement_ci"], rubric.min_top1, False)
    return None


def _worst_end_meets(row: dict, rubric: Rubric) -> dict:
    """Each quality criterion checked at the unfavourable end of its interval."""
    out = {}
    for name in ("ppl", "kld", "top1"):
        lo, hi, limit, lower_is_better = _bounds(row, name, rubric)
        out[name] = hi <= limit if lower_is_better else lo >= limit
    return out


def _criterion_text(row: dict, name: str, rubric: Rubric) -> str:
    """``"KLD 0.0123 [0.0101, 0.0150] (limit 0.02)"`` for one criterion of a row."""
    if name == "ppl":
        lo, hi = row["ppl_change_ci"]
        return (f"perplexity change {100 * row['ppl_change']:+.2f} % [{100 * lo:+.2f}, {100 * hi:+.2f}] "
                f"(limit {100 * rubric.max_ppl_increase:+.2f} %)")
    if name == "kld":
        lo, hi = row["kld_ci"]
        return f"KLD {row['kld']:.4g} [{lo:.4g}, {hi:.4g}] nats (limit {rubric.max_kld:g})"
    if name == "top1":
        lo, hi = row["top1_agreement_ci"]
        return f"top-1 agreement {row['top1_agreement']:.3f} [{lo:.3f}, {hi:.3f}] (minimum {rubric.min_top1:g})"
    return f"{name.replace('_', ' ')} {row[name]:.3f} (minimum {getattr(rubric, 'min_' + name):g})"


@dataclass
class Decision:
    """What :func:`choose` decided.

    Attributes:
        choice: the chosen row (the smallest eligible row that passes), or None when none passes.
        rows: every row, smallest first.
        eligible: the kinds the choice was made among.
        reasons: sentences computed from the rows' numbers and intervals, in reading order.
    """

    choice: dict | None
    rows: list
    eligible: tuple
    reasons: list = field(default_factory=list)

    @property
    def label(self) -> str | None:
        return None if self.choice is None else self.choice["label"]

    def text(self) -> str:
        """The reasons as one Markdown bullet list."""
        return "\n".join(f"- {r}" for r in self.reasons)


def choose(rows: list[dict], rubric: Rubric = Rubric(), eligible=("gguf",), reference: str | None = None,
           budget_bytes: float | None = None, n_boot: int = 2000, seed: int = 0) -> Decision:
    """The smallest eligible row that passes ``rubric``, with the reasons, computed.

    The rule is lesson 03's (``smallest_passing``): among the rows that meet every criterion
    on the estimate, the smallest file. Rows of the same size (one type with and without the
    importance matrix) are ordered by a clear pass first, then by the lower KLD. The reasons
    add what the intervals say:

    1. the choice: each criterion's value, interval and limit; "met clearly" when it is met at
       the interval's unfavourable end, "borderline" otherwise;
    2. every smaller eligible row, and same-size rows passed over: the criteria each fails,
       "clearly" (the whole interval is past the limit) or "borderline" (the interval contains it);
    3. the next larger passing row of the same kind: the paired KLD difference (chosen minus it,
       chunks resampled) and whether the text can tell them apart ("indistinguishable" when the
       interval covers 0): what its extra bytes would buy;
    4. with ``budget_bytes``: whether the choice fits, and if not, the largest file that does and
       the criteria it fails (the rubric and the budget conflict: report both, loosen neither quietly);
    5. rows of other kinds (not eligible): the smallest that passes, and how its size compares.

    Args:
        rows: from :func:`variant_row`.
        eligible: the kinds the choice is made among (default: files only; a torch row is not a file).
        reference: label of the unquantized row (e.g. ``"F16"``): when it is the only passing one,
            the reasons say that no quantization meets the rubric.
        budget_bytes: an optional size limit (bytes); it does not change the rule, it is reported against.

    Returns:
        A :class:`Decision`.
    """
    if not rows:
        raise CourseError("rows is empty: nothing to choose from")
    bad = [k for k in eligible if k not in KINDS]
    if not eligible or bad:
        raise CourseError(f"eligible={eligible!r}; allowed: a non-empty subset of {KINDS}")
    labels = [r["label"] for r in rows]
    if reference is not None and reference not in labels:
        raise CourseError(f"reference={reference!r} is not among the rows' labels {labels}")
    if budget_bytes is not None and not (np.isfinite(budget_bytes) and budget_bytes > 0):
        raise CourseError(f"budget_bytes={budget_bytes!r}; allowed: None or a positive number of bytes")
    rows = sorted(rows, key=lambda r: (r["file_bytes"], not r["clear"], r["kld"]))
    pool = [r for r in rows if r["kind"] in eligible]
    if not pool:
        raise CourseError(f"no row of kind {eligible!r} among {labels}")
    passing = [r for r in pool if r["passes"]]
    choice = passing[0] if passing else None
    reasons: list[str] = []
    where = "/".join(eligible)

    if choice is None:
        near = min(pool, key=lambda r: _excess(r, rubric))
        reasons.append(f"No {where} variant passes this rubric. The closest is {near['label']} ({_size(near)}), "
                       f"which fails: {_fail_text(near, rubric)}. Loosen the rubric, allow more bits, or keep the "
                       "unquantized model.")
    elif reference is not None and choice["label"] == reference:
        reasons.append(f"Only the unquantized reference {reference} passes: no quantized {where} variant meets "
                       "this rubric. Loosen the rubric or allow more bits.")
    else:
        worst = _worst_end_meets(choice, rubric)
        quality = "; ".join(_criterion_text(choice, c, rubric)
                            + (" - met clearly" if worst[c] else " - met on the estimate, borderline by its interval")
                            for c in worst)
        reasons.append(f"Choice: {choice['label']} ({_size(choice)}), the smallest {where} variant that passes "
                       f"the rubric: {quality}.")
        if not choice["clear"]:
            reasons.append(f"{choice['label']} passes on its estimates, but an interval reaches past a limit: on other "
                           "text it could fail. Evaluate more chunks before relying on it, or take the next larger "
                           "passing variant.")
    if choice is not None:
        for r in pool:  # 2. what was smaller (or as small) and passed over
            if r is choice or r["file_bytes"] > choice["file_bytes"]:
                continue
            if r["passes"]:  # same size, ordered after the choice
                d = mean_ci(choice["_scores"].kld - r["_scores"].kld, n_boot=n_boot, seed=seed)
                reasons.append(f"{r['label']} has the same size and passes too"
                               + ("" if r["clear"] else " (borderline)") + "; "
                               + d.verdict(f"{choice['label']}'s KLD", f"{r['label']}'s", higher="higher",
                                           lower="lower") + f", difference {d.format(digits=4)}.")
            else:
                reasons.append(f"{'Smaller' if r['file_bytes'] < choice['file_bytes'] else 'Same-size'} {r['label']} "
                               f"({_size(r)}) fails: {_fail_text(r, rubric)}.")
        larger = [r for r in passing if r["file_bytes"] > choice["file_bytes"] and r["kind"] == choice["kind"]
                  and r["label"] != reference]
        if larger:  # 3. what more bytes would buy
            nxt = larger[0]
            d = mean_ci(choice["_scores"].kld - nxt["_scores"].kld, n_boot=n_boot, seed=seed)
            extra = nxt["file_bytes"] / choice["file_bytes"] - 1
            reasons.append(f"The next larger passing variant, {nxt['label']}, costs {100 * extra:.0f} % more bytes; "
                           + d.verdict(f"{choice['label']}'s KLD", f"{nxt['label']}'s", higher="higher",
                                       lower="lower")
                           + f", difference {d.format(digits=4)}. Both meet the rubric, so the extra bytes buy "
                           + ("nothing this text can measure." if d.covers(0) else
                              "a measurable improvement the rubric does not ask for."))
    if budget_bytes is not None:  # 4. the budget
        MiB = 2 ** 20
        fits = [r for r in pool if r["file_bytes"] <= budget_bytes]
        if choice is not None and choice["file_bytes"] <= budget_bytes:
            reasons.append(f"The choice fits the budget of {budget_bytes / MiB:.2f} MiB "
                           f"({budget_bytes - choice['file_bytes']:,.0f} bytes to spare).")
        elif not fits:
            reasons.append(f"No {where} variant fits the budget of {budget_bytes / MiB:.2f} MiB: the smallest is "
                           f"{pool[0]['label']} ({_size(pool[0])}).")
        else:
            best = max(fits, key=lambda r: (r["file_bytes"], r["clear"], -r["kld"]))
            reasons.append(f"The budget of {budget_bytes / MiB:.2f} MiB and the rubric conflict: the largest {where} "
                           f"variant that fits, {best['label']} ({_size(best)}), fails: {_fail_text(best, rubric)}. "
                           "Report the conflict; do not loosen the rubric after seeing the numbers.")
    others = [r for r in rows if r["kind"] not in eligible]
    if others:  # 5. rows that could not be chosen
        kinds = "/".join(sorted({r["kind"] for r in others}))
        other_pass = [r for r in others if r["passes"]]
        if other_pass:
            o = other_pass[0]
            cmp = "" if choice is None else (
                f", {'smaller' if o['file_bytes'] < choice['file_bytes'] else 'larger'} than the choice")
            reasons.append(f"Not eligible ({kinds}, not a file llama.cpp loads): the smallest that passes is "
                           f"{o['label']} ({_size(o)}{cmp}); its size is an estimate and its reference is the "
                           "float model, not the F16 file.")
        else:
            reasons.append(f"None of the {kinds} variants (not eligible) passes the rubric.")
    return Decision(choice, rows, tuple(eligible), reasons)


def _size(r: dict) -> str:
    return f"{r['file_bytes'] / 2 ** 20:.2f} MiB, {r['bpw']:.2f} bpw"


def _excess(r: dict, rubric: Rubric) -> float:
    """How far a row is past its worst criterion, as a ratio to the limit (1 = on the limit)."""
    return max(r["ppl_change"] / max(rubric.max_ppl_increase, 1e-12), r["kld"] / max(rubric.max_kld, 1e-12),
               rubric.min_top1 / max(r["top1_agreement"], 1e-12))


def _fail_text(r: dict, rubric: Rubric) -> str:
    """The criteria a row fails, each with its interval and "clearly" or "borderline"."""
    fails = [c for c, ok in r["criteria"].items() if not ok]
    return "; ".join(_criterion_text(r, c, rubric) + (" - borderline, its interval contains the limit"
                                                      if _straddles(r, c, rubric) else " - clearly")
                     for c in fails)


def _straddles(row: dict, name: str, rubric: Rubric) -> bool:
    """True when the criterion's interval contains its limit (the estimate alone decided)."""
    bounds = _bounds(row, name, rubric)
    if bounds is None:  # no interval: the estimate decides
        return False
    lo, hi, limit, _ = bounds
    return lo <= limit <= hi


def format_rows(rows: list[dict], choice: str | None = None) -> str:
    """A fixed-width table of :func:`variant_row` rows, smallest first (``*`` marks ``choice``)."""
    head = (f"{'variant':<16}{'kind':<6}{'MiB':>7}{'bpw':>7}{'ppl':>9}{'dPPL % [95% CI]':>26}"
            f"{'KLD [95% CI]':>30}{'top1':>7}  pass")
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: r["file_bytes"]):
        lo, hi = r["ppl_change_ci"]
        klo, khi = r["kld_ci"]
        verdict = ("yes" if r["clear"] else "yes (borderline)") if r["passes"] else "no"
        dppl = f"{100 * r['ppl_change']:+.2f} [{100 * lo:+.2f},{100 * hi:+.2f}]"
        kld = f"{r['kld']:.4f} [{klo:.4f},{khi:.4f}]"
        lines.append(f"{r['label']:<16}{r['kind']:<6}{r['file_bytes'] / 2**20:>7.2f}{r['bpw']:>7.2f}{r['ppl']:>9.3f}"
                     f"{dppl:>26}{kld:>30}{r['top1_agreement']:>7.3f}  {verdict}"
                     + ("  <- choice" if r["label"] == choice else ""))
    return "\n".join(lines)
