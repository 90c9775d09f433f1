"""Pages of docs/ that are assembled from other files stay in step with
them."""
import os

from mqtest import ROOT


def test_benchmarks_page_carries_the_bench_notes():
    """ci/bench writes docs/benchmarks.md as its tables followed by
    ci/bench-notes.md. Figures measured by hand go into the notes between
    full runs (about half an hour each), and the page must show them too:
    the notes appear in it whole, as ci/bench would copy them."""
    with open(os.path.join(ROOT, "ci", "bench-notes.md")) as f:
        notes = f.read().rstrip()
    with open(os.path.join(ROOT, "docs", "benchmarks.md")) as f:
        page = f.read()
    if notes in page:
        return
    missing = [ln for ln in notes.splitlines() if ln.startswith("## ") and ln not in page.splitlines()]
    raise AssertionError("docs/benchmarks.md lacks part of ci/bench-notes.md (copy it as ci/bench does, or run "
                         f"ci/bench); sections missing: {missing or 'none, but the text differs'}")
