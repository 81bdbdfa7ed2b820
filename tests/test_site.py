"""The rendered course site (`make html`): every lesson page shows its plots and math, no page has
errors, and the navigation links resolve. Opens each page in Debian's chromium through playwright
(`executable_path`; playwright never downloads a browser here). Builds the whole site: slow."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing on CI: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium on this machine (apt-get install chromium); CI installs it")
    out = tmp_path_factory.mktemp("site") / "html"
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--out", str(out)], check=True, cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _lessons() -> list[str]:
    return sorted(p.stem for p in (ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


def _plots_in(executed: Path) -> int:
    nb = nbformat.read(str(executed), as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {}))


def _local_targets(page) -> list[str]:
    hrefs = page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    return [h for h in hrefs if h.startswith("file://")]


def test_every_lesson_page_shows_its_plots_and_math_and_no_errors(site, browser):
    for name in _lessons():
        page = browser.new_page()
        js_errors = []
        page.on("pageerror", lambda e: js_errors.append(str(e)))
        page.goto((site / f"{name}.html").as_uri())
        page.wait_for_function("typeof MathJax !== 'undefined' && MathJax.Hub && MathJax.Hub.queue.pending === 0",
                               timeout=60_000)
        executed = next((site / "_executed").glob(f"{name}.*.ipynb"))
        expected = _plots_in(executed)
        shown = page.evaluate("Array.from(document.images).filter(i => i.src.startsWith('data:image') "
                              "&& i.complete && i.naturalWidth > 0).length")
        assert expected > 0, f"{name}: the lesson draws no plot"
        assert shown == expected, f"{name}: {shown} of {expected} plots shown"
        text = page.inner_text("body")
        assert "Traceback (most recent call last)" not in text, f"{name}: error output on the page"
        assert page.evaluate("document.querySelectorAll('.MathJax .merror').length") == 0, f"{name}: a formula failed"
        assert page.evaluate("document.querySelectorAll('.MathJax, .MathJax_Display').length") > 0, f"{name}: no math typeset"
        assert js_errors == [], f"{name}: {js_errors[:3]}"
        page.close()


def test_navigation_links_resolve_and_reach_every_lesson(site, browser):
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    listed = [Path(unquote(urlparse(h).path)).stem for h in _local_targets(page)]
    assert listed == _lessons(), "the index lists every lesson, in order"
    reached, here = [], site / f"{_lessons()[0]}.html"
    while True:
        page.goto(here.as_uri())
        reached.append(here.stem)
        for href in _local_targets(page):
            target = Path(unquote(urlparse(href).path))
            assert target.is_file(), f"{here.name}: broken link to {target.name}"
        nxt = page.query_selector("nav.course-nav a[rel=next]")
        if nxt is None:
            break
        here = Path(unquote(urlparse(nxt.evaluate("a => a.href")).path))
    assert reached == _lessons(), "following 'next' from lesson 00 visits every lesson once, in order"
    page.close()
