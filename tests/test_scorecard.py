import json

import pytest

from courseutils.core.errors import CourseError
from courseutils.scoring.scorecard import Rubric, format_table, run_scorecard, write_json

FIELDS = {"type", "file_bytes", "bpw", "load_bytes", "tokens_per_second", "ppl", "kld", "top1_agreement",
          "format_following", "task_accuracy", "passes", "sha256"}


# Scores four quant types end to end (~10-20 s): the tests that use it are marked slow.
@pytest.fixture(scope="module")
def card():
    return run_scorecard("tinycode", ["F16", "Q8_0", "Q4_K_M", "Q2_K"], n_chunks=4, n_prompts=4, max_tokens=24,
                         progress=False)


@pytest.mark.slow
def test_scorecard_fields_and_choice(card, tmp_path):
    rows = card["variants"]
    assert [r["type"] for r in rows] == ["F16", "Q8_0", "Q4_K_M", "Q2_K"]
    for r in rows:
        assert FIELDS <= set(r)
        assert r["passes"] == all(r["criteria"].values())
    assert rows[0]["kld"] == 0 and rows[0]["top1_agreement"] == 1
    sizes = [r["file_bytes"] for r in rows]
    assert sizes == sorted(sizes, reverse=True)
    passing = [r for r in rows if r["passes"]]
    assert card["smallest_passing"] == min(passing, key=lambda r: r["file_bytes"])["type"]
    kld = [r["kld"] for r in rows]
    assert kld == sorted(kld) and kld[-1] > kld[1] > 0      # smaller files drift further from F16
    assert {"date", "versions", "corpus_sha256"} <= set(card["provenance"])
    out = write_json(card, tmp_path / "card.json")
    assert json.loads(out.read_text())["smallest_passing"] == card["smallest_passing"]
    assert "smallest passing variant" in format_table(card)


@pytest.mark.slow
def test_intervals_contain_their_estimates_and_the_old_keys_stay(card):
    rows = card["variants"]
    ref = rows[0]
    assert ref["ppl_change"] == 0 and ref["ppl_change_ci"] == [0, 0] and ref["kld_ci"] == [0, 0]
    assert ref["format_following_diff_ci"] == [0, 0]
    for r in rows:
        assert FIELDS <= set(r)                                          # the stable CLI keys
        for key in ("ppl_change", "kld", "top1_agreement", "format_following", "format_following_diff",
                    "task_accuracy"):
            low, high = r[key + "_ci"]
            assert low - 1e-4 <= r[key] <= high + 1e-4, (r["type"], key, r[key], low, high)
        assert abs(r["ppl_change"] - (r["ppl"] / ref["ppl"] - 1)) < 1e-4
        b = r["buffer_bytes"]
        assert b["total"] == b["model"] + b["kv"] + b["output"] + b["compute"]
        assert b["total"] > r["load_bytes"] - 2 * 5243   # the compute buffer comes on top of weights + KV
    q2 = rows[-1]
    assert q2["ppl_change_ci"][0] > 0, "Q2_K's perplexity increase should be clear even on 4 chunks"
    assert card["settings"]["ci"]["level"] == 0.95


@pytest.mark.slow
def test_bpw_from_file(card):
    bpw = {r["type"]: r["bpw"] for r in card["variants"]}
    assert 15.9 < bpw["F16"] < 16.1                 # norms are F32, the rest F16
    assert 8.4 < bpw["Q8_0"] < 8.7                  # 34 bytes per 32 weights = 8.5
    assert bpw["Q2_K"] < bpw["Q4_K_M"] < bpw["Q8_0"]


@pytest.mark.slow
def test_strict_rubric_can_reject_everything_but_the_reference(card):
    strict = Rubric(max_kld=0.0, max_ppl_increase=0.0, min_top1=1.0)
    ref = card["variants"][0]
    assert strict.check(ref, ref) == {k: True for k in strict.check(ref, ref)}
    assert not all(strict.check(card["variants"][2], ref).values())


@pytest.mark.parametrize("kwargs", [{"max_kld": -1}, {"min_top1": 2}, {"max_ppl_increase": float("nan")}])
def test_bad_rubric(kwargs):
    with pytest.raises(CourseError, match=next(iter(kwargs))):
        Rubric(**kwargs)


def test_bad_types():
    with pytest.raises(CourseError, match="Q3_X"):
        run_scorecard("tinycode", ["F16", "Q3_X"])
