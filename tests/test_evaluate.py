"""evaluate_ggufs: many files against one base, per token; it must equal perplexity_gguf file by file."""
from __future__ import annotations

import numpy as np
import pytest

from courseutils.core.errors import CourseError
from courseutils.llamacpp import get_gguf
from courseutils.scoring.evaluate import evaluate_ggufs, perplexity_gguf


@pytest.mark.slow
def test_many_files_at_once_equal_one_file_at_a_time(f16_gguf, val_text):
    paths = {"Q8_0": get_gguf("tinycode", "Q8_0"), "Q2_K": get_gguf("tinycode", "Q2_K"), "F16": f16_gguf}
    chunks, scores = evaluate_ggufs(paths, val_text, base=f16_gguf, n_ctx=128, n_chunks=3)
    assert chunks.shape == (3, 128)
    for label in ("Q8_0", "Q2_K"):
        one = perplexity_gguf(paths[label], val_text, n_ctx=128, base=f16_gguf, n_chunks=3)
        s = scores[label]
        assert s.nll.shape == s.kld.shape == s.same_top.shape == (3, 128 - 1 - 64)
        assert s.ppl == pytest.approx(one["ppl"], rel=1e-12)
        assert float(np.exp(s.base_nll.mean())) == pytest.approx(one["base_ppl"], rel=1e-12)
        assert s.kld.mean() == pytest.approx(one["kld"], rel=1e-9)
        assert s.same_top.mean() == pytest.approx(one["top1_agreement"], abs=1e-12)
    assert scores["Q2_K"].kld.mean() > scores["Q8_0"].kld.mean() > 0
    assert np.abs(scores["F16"].kld).max() < 1e-9 and scores["F16"].same_top.all()


def test_bad_arguments_are_clear_errors(f16_gguf):
    with pytest.raises(CourseError, match="non-empty"):
        evaluate_ggufs({}, "text", base=f16_gguf)
    with pytest.raises(CourseError, match="text is empty"):
        evaluate_ggufs({"a": f16_gguf}, "  ", base=f16_gguf)
