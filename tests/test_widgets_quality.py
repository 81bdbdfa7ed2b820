from courseutils.scoring.scorecard import Rubric, smallest_passing
from courseutils.viz.widgets_quality import common_prefix_len, rescore, rubric_explorer

ROWS = [
    {"type": "F16", "file_bytes": 100, "ppl": 10.0, "kld": 0.0, "top1_agreement": 1.0, "format_following": 0.9,
     "task_accuracy": 0.5},
    {"type": "Q8_0", "file_bytes": 53, "ppl": 10.01, "kld": 0.001, "top1_agreement": 0.98, "format_following": 0.9,
     "task_accuracy": 0.5},
    {"type": "Q4_K_M", "file_bytes": 30, "ppl": 10.3, "kld": 0.03, "top1_agreement": 0.92, "format_following": 0.8,
     "task_accuracy": 0.45},
]


def test_rescore_agrees_with_smallest_passing():
    for rubric, expected in [(Rubric(), "Q8_0"), (Rubric(max_kld=0.05, max_ppl_increase=0.05), "Q4_K_M"),
                             (Rubric(min_format_following=0.95), None)]:
        checks, smallest = rescore(ROWS, rubric)
        assert smallest == expected == smallest_passing(ROWS, rubric)
        assert len(checks) == 3 and all(checks[0].values()) == (expected is not None)


def test_slider_changes_the_verdict():
    box = rubric_explorer({"variants": ROWS, "rubric": {}})
    kld_slider = box.children[1]
    table = box.children[-1]
    assert "Q8_0" in table.value
    before = table.value
    kld_slider.value = 0.05
    box.children[0].value = 0.05
    assert table.value != before


def test_common_prefix():
    assert common_prefix_len("abcd", "abxd") == 2
    assert common_prefix_len([1, 2], [1, 2, 3]) == 2
