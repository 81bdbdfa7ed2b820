from courseutils.scoring.tasks import cloze_category, follows_format, function_prompts, indentation_ok, is_valid_prefix


def test_valid_prefixes():
    assert is_valid_prefix("def f(x):\n    return x\n")
    assert is_valid_prefix("def f(x):\n    y = (x,\n")          # unfinished, but could be completed
    assert is_valid_prefix('def f(x):\n    """doc\n')
    assert not is_valid_prefix("def f(x):\n    return x)\n")      # no continuation can fix this
    assert not is_valid_prefix("def f(x):\nreturn x\n")


def test_indentation():
    assert indentation_ok("if x:\n    y = 1\n")
    assert not indentation_ok("if x:\n   y = 1\n")
    assert not indentation_ok("if x:\n\ty = 1\n")


def test_follows_format_drops_the_cut_line():
    prompt = "def f(x):\n"
    assert follows_format(prompt, "    y = x + 1\n    return y +")    # last line is cut off by max_tokens
    assert not follows_format(prompt, "    y = x + 1)\n    return y\n")


def test_prompts_are_deterministic_and_held_out():
    a, b = function_prompts(6, seed=1), function_prompts(6, seed=1)
    assert a == b and len(a) == 6
    assert all(p.startswith("def ") and p.endswith("\n") for p in a)


def test_cloze_categories():
    assert cloze_category(" return", "") == "keyword"
    assert cloze_category(")", "") == "bracket"
    assert cloze_category(" value", "x = value\n") == "identifier"
    assert cloze_category(" value", "x = 1\n") is None
    assert cloze_category("  ", "") is None


def test_parsing_completions_is_silent_but_only_about_the_parsed_text():
    """Compiling a completion with an invalid escape warns (Deprecation/SyntaxWarning); that is the
    completion's problem, not ours: no warning escapes while parsing, and the silencing does
    not outlive the call."""
    import warnings

    from courseutils.scoring.tasks import is_valid_prefix

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert is_valid_prefix('pattern = "\\d+"\n')
        assert is_valid_prefix("if x is 1:\n    pass\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        is_valid_prefix("x = 1\n")
        warnings.warn("still visible", DeprecationWarning)
    assert [str(w.message) for w in caught] == ["still visible"]
