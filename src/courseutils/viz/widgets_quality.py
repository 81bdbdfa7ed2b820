"""ipywidgets explorers for lessons 00 and 03 (ipywidgets 7.7 and 8).

- :func:`completion_explorer`: pick a prompt and a quant type, see its greedy completion
  next to the reference model's, with the first point where they part ways marked.
- :func:`rubric_explorer`: sliders on the rubric thresholds; every move re-checks the
  precomputed scorecard rows and names the smallest variant that passes.

Callbacks only format precomputed results (no model runs), so they answer at once.
Only widgets that exist in both ipywidgets 7.7 and 8 are used (``Dropdown``,
``ToggleButtons``, ``FloatSlider``, ``FloatLogSlider``, ``HTML``, ``VBox``, ``HBox``) and
``observe``.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from ..core.errors import CourseError
from ..scoring.scorecard import Rubric, smallest_passing

__all__ = ["common_prefix_len", "completion_explorer", "rescore", "rubric_explorer"]


def common_prefix_len(a: Sequence, b: Sequence) -> int:
    """Length of the longest common prefix of two sequences (strings or token lists)."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _side_by_side(prompt: str, ref_name: str, ref_text: str, name: str, text: str, note: str) -> str:
    k = common_prefix_len(ref_text, text)

    def cell(s: str) -> str:
        same, rest = html.escape(s[:k]), html.escape(s[k:])
        return (f"<pre style='white-space:pre-wrap;margin:0'><span style='color:#777'>{html.escape(prompt)}</span>"
                f"{same}<span style='background:#ffd9d9'>{rest}</span></pre>")

    return (f"<table style='width:100%;table-layout:fixed'><tr><th style='text-align:left'>{html.escape(ref_name)}</th>"
            f"<th style='text-align:left'>{html.escape(name)}</th></tr>"
            f"<tr><td style='vertical-align:top'>{cell(ref_text)}</td><td style='vertical-align:top'>{cell(text)}</td>"
            f"</tr></table><div>{note}</div>")


def completion_explorer(prompts: Sequence[str], completions: dict[str, Sequence[str]], reference: str,
                        tokenize: Callable[[str], Sequence[int]] | None = None):
    """A widget: choose a prompt and a variant, compare its completion with the reference's.

    Args:
        prompts: the prompts, ``(n,)``.
        completions: ``{variant: [completion of prompt i, ...]}``, every list ``(n,)``;
            must contain ``reference``.
        reference: the variant shown on the left (e.g. ``"F16"``).
        tokenize: optional ``text -> token ids``; when given, the note counts the tokens
            the two completions share before they part ways.
    Returns:
        An ``ipywidgets.VBox``. Grey: prompt; red background: text after the first
        character where the two completions differ.
    """
    import ipywidgets as widgets

    if reference not in completions:
        raise CourseError(f"reference={reference!r} is not among the variants {sorted(completions)}")
    bad = {k: len(v) for k, v in completions.items() if len(v) != len(prompts)}
    if not prompts or bad:
        raise CourseError(f"need one completion per prompt ({len(prompts)} prompts); got lengths {bad}")
    others = [k for k in completions if k != reference] or [reference]
    first_lines = [p.strip().splitlines()[0] if p.strip() else repr(p) for p in prompts]
    prompt_w = widgets.Dropdown(options=[(f"{i}: {line[:60]}", i) for i, line in enumerate(first_lines)],
                                value=0, description="prompt")
    type_w = widgets.ToggleButtons(options=others, value=others[-1], description="variant")
    out = widgets.HTML()

    def update(_=None):
        i, name = prompt_w.value, type_w.value
        ref_text, text = completions[reference][i], completions[name][i]
        if ref_text == text:
            note = "identical completions"
        elif tokenize is not None:
            a, b = list(tokenize(ref_text)), list(tokenize(text))
            k = common_prefix_len(a, b)
            note = f"the first {k} of {len(a)} tokens agree; token {k} is where they part ways"
        else:
            note = f"the first {common_prefix_len(ref_text, text)} characters agree"
        out.value = _side_by_side(prompts[i], reference, ref_text, name, text, html.escape(note))

    prompt_w.observe(update, names="value")
    type_w.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([prompt_w]), type_w, out])


def rescore(rows: Sequence[dict], rubric: Rubric) -> tuple[list[dict], str | None]:
    """Re-check scorecard rows against ``rubric``; the first row is the reference.

    Returns ``(criteria per row, type of the smallest passing file or None)``. Nothing is
    re-measured: this only compares the stored numbers with new thresholds.
    """
    if not rows:
        raise CourseError("rows is empty; give the scorecard's 'variants'")
    checks = [rubric.check(r, rows[0]) for r in rows]
    return checks, smallest_passing(list(rows), rubric)


def _rubric_table(rows: Sequence[dict], checks: list[dict], smallest: str | None) -> str:
    mark = {True: "<span style='color:green'>&#10003;</span>", False: "<span style='color:#c00'>&#10007;</span>"}
    ref_ppl = rows[0]["ppl"]
    head = ("<tr><th>type</th><th>MiB</th><th>ppl (&Delta;%)</th><th>KLD</th><th>top-1</th><th>format</th>"
            "<th>task</th><th>pass</th></tr>")
    body = []
    for r, c in zip(rows, checks):
        style = " style='background:#e6f4e6;font-weight:bold'" if r["type"] == smallest else ""
        dppl = 100 * (r["ppl"] / ref_ppl - 1)
        body.append(
            f"<tr{style}><td>{html.escape(r['type'])}</td><td>{r['file_bytes'] / 2**20:.2f}</td>"
            f"<td>{r['ppl']:.4g} ({dppl:+.2f}) {mark[c['ppl']]}</td><td>{r['kld']:.2e} {mark[c['kld']]}</td>"
            f"<td>{r['top1_agreement']:.3f} {mark[c['top1']]}</td>"
            f"<td>{r['format_following']:.2f} {mark[c['format_following']]}</td>"
            f"<td>{r['task_accuracy']:.3f} {mark[c['task_accuracy']]}</td><td>{mark[all(c.values())]}</td></tr>")
    verdict = f"smallest passing variant: <b>{html.escape(smallest)}</b>" if smallest else \
        "<b>no variant passes</b> (not even the reference: its format or task threshold is too strict)"
    return f"<table>{head}{''.join(body)}</table><p>{verdict}</p>"


def rubric_explorer(card: dict):
    """Sliders on the rubric thresholds over a precomputed scorecard (from ``run_scorecard``).

    Moving a slider builds a new :class:`~courseutils.scoring.scorecard.Rubric`, re-checks every
    row and redraws the table; the smallest passing variant is highlighted.
    """
    import ipywidgets as widgets

    rows = card.get("variants") if isinstance(card, dict) else None
    if not rows:
        raise CourseError("card must be a scorecard dict with a non-empty 'variants' list (from run_scorecard)")
    start = card.get("rubric") or {}
    default = Rubric()
    style, layout = {"description_width": "190px"}, widgets.Layout(width="520px")

    def slider(name, lo, hi, step, fmt, desc):
        value = min(max(float(start.get(name, getattr(default, name))), lo), hi)
        return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, readout_format=fmt, description=desc,
                                   continuous_update=True, style=style, layout=layout)

    ppl_w = slider("max_ppl_increase", 0.0, 0.5, 0.001, ".3f", "max ppl increase (fraction)")
    kld_w = widgets.FloatLogSlider(value=min(max(float(start.get("max_kld", default.max_kld)), 1e-6), 1.0),
                                   base=10, min=-6, max=0, step=0.05, readout_format=".1e",
                                   description="max mean KLD (nats)", continuous_update=True, style=style,
                                   layout=layout)
    top1_w = slider("min_top1", 0.0, 1.0, 0.005, ".3f", "min same-top-token rate")
    fmt_w = slider("min_format_following", 0.0, 1.0, 0.05, ".2f", "min format following")
    task_w = slider("min_task_accuracy", 0.0, 1.0, 0.01, ".2f", "min task accuracy")
    out = widgets.HTML()

    def update(_=None):
        rubric = Rubric(max_ppl_increase=ppl_w.value, max_kld=kld_w.value, min_top1=top1_w.value,
                        min_format_following=fmt_w.value, min_task_accuracy=task_w.value)
        checks, smallest = rescore(rows, rubric)
        out.value = _rubric_table(rows, checks, smallest)

    for w in (ppl_w, kld_w, top1_w, fmt_w, task_w):
        w.observe(update, names="value")
    update()
    return widgets.VBox([ppl_w, kld_w, top1_w, fmt_w, task_w, out])
