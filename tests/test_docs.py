"""The documentation site builds offline with ``mkdocs build --strict``, and the README's links resolve.

Strict mode turns every warning into a failure: a link to a missing page or anchor (``validation`` in
mkdocs.yml), a page missing from the nav, a docstring the API reference cannot render.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*$", re.M)
FENCED = re.compile(r"^(`{3,}).*?^\1\s*$", re.M | re.S)


def slug(title: str) -> str:
    """Python-Markdown's toc anchor of a heading (its default slugify)."""
    text = unicodedata.normalize("NFKD", re.sub(r"[`*]", "", title)).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def test_site_builds_strict_offline_with_an_api_reference(tmp_path):
    site = tmp_path / "site"
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(site)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{(result.stdout + result.stderr)[-6000:]}"
    api = (site / "api" / "environments" / "index.html").read_text()
    assert "allocation_from_action" in api and "DistillerConfig" in api, "the API reference lacks the contract or ReAD-v0's config"
    assert "agents.harness.compare" in (site / "api" / "agents" / "index.html").read_text()
    pages = [page.read_text() for page in site.rglob("*.html")]
    assert not [page for page in pages if "fonts.googleapis.com" in page or "fonts.gstatic.com" in page], "a page loads web fonts"


def test_readme_links_resolve():
    """The README is not part of the site, so mkdocs does not check it: every relative link and anchor must exist."""
    broken = []
    for target in LINK.findall((REPO / "README.md").read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = REPO / path if path else REPO / "README.md"
        if not file.exists():
            broken.append(target)
        elif anchor and anchor not in {slug(title) for title in HEADING.findall(FENCED.sub("", file.read_text()))}:
            broken.append(target)
    assert not broken, f"README.md links to missing files or anchors: {broken}"
