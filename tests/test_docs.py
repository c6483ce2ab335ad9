"""The documents work from a fresh clone: links resolve inside it, README examples run.

- Every relative link and image in the repository's Markdown files (README.md, docs/,
  and the rest) names a file or folder inside the repository, and a ``#anchor`` names
  a heading of the Markdown file it points to. http(s) and mailto links are not
  followed.
- Every ```python block of README.md runs as written, in a fresh interpreter, in an
  empty temporary folder, with this checkout first on PYTHONPATH (wandb offline). A
  block that imports a package that is not installed (PyTorch, say) is skipped, with
  the package named.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys
import urllib.parse

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {"build", "dist", "node_modules", "venv", "__pycache__", "site-packages"}

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HTML_REF = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
HTML_ID = re.compile(r"<[a-z][^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def markdown_files():
    out = []
    for d, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(x for x in dirs if not x.startswith(".") and x not in SKIP_DIRS
                         and not x.endswith(".egg-info"))
        out += [os.path.join(d, f) for f in sorted(files) if f.endswith(".md")]
    return out


def split_fences(text):
    """[(kind, info, lines, first_line_no)]: kind "text" or "code" (info: the fence's language)."""
    parts, cur, kind, info, fence, start = [], [], "text", "", None, 1
    for no, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            parts.append((kind, info, cur, start))
            cur, kind, info, fence, start = [], "code", m.group(2).lower(), m.group(1), no + 1
        elif fence is not None and line.strip().startswith(fence[0] * len(fence)) and \
                line.strip().strip(fence[0]) == "":
            parts.append((kind, info, cur, start))
            cur, kind, info, fence, start = [], "text", "", None, no + 1
        else:
            cur.append(line)
    parts.append((kind, info, cur, start))
    return [p for p in parts if p[2] or p[0] == "code"]


def without_code_spans(line):
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)


def links(path):
    """[(line_no, target)] of every link, image and HTML href/src outside code."""
    out = []
    for kind, _, lines, start in split_fences(read_text(path)):
        if kind != "text":
            continue
        for i, line in enumerate(lines):
            line = without_code_spans(line)
            found = INLINE_LINK.findall(line) + HTML_REF.findall(line)
            m = REF_DEF.match(line)
            if m:
                found.append(m.group(1))
            out += [(start + i, t) for t in found]
    return out


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces -> '-'."""
    text = without_code_spans_keep(heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def without_code_spans_keep(line):
    return re.sub(r"(`+)((?:(?!\1).)+?)\1", r"\2", line)


def anchors(path):
    seen, out = {}, set()
    for kind, _, lines, _ in split_fences(read_text(path)):
        if kind != "text":
            continue
        for line in lines:
            out.update(HTML_ID.findall(line))
            m = HEADING.match(line)
            if m:
                s = slug(m.group(1))
                n = seen.get(s, 0)
                seen[s] = n + 1
                out.add(s if n == 0 else f"{s}-{n}")
    return out


def inside(path):
    root = os.path.realpath(ROOT)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


MD_FILES = markdown_files()


def test_the_documents_are_found():
    rel = {os.path.relpath(p, ROOT) for p in MD_FILES}
    assert {"README.md", os.path.join("docs", "SPEC.md")} <= rel
    assert any(t == "docs/SPEC.md" for _, t in links(os.path.join(ROOT, "README.md")))


@pytest.mark.parametrize("md", MD_FILES, ids=[os.path.relpath(p, ROOT) for p in MD_FILES])
def test_relative_links_resolve_inside_the_repository(md):
    bad = []
    for no, target in links(md):
        scheme = urllib.parse.urlsplit(target).scheme
        if scheme in ("http", "https", "mailto"):
            continue
        where = f"{os.path.relpath(md, ROOT)}:{no}: {target}"
        if scheme or target.startswith("//"):
            bad.append(f"{where} (not a relative link)")
            continue
        path, _, anchor = target.partition("#")
        path = urllib.parse.unquote(path)
        dest = os.path.join(ROOT, path.lstrip("/")) if path.startswith("/") else \
            os.path.join(os.path.dirname(md), path) if path else md
        if not inside(dest):
            bad.append(f"{where} (outside the repository)")
        elif not os.path.exists(dest):
            bad.append(f"{where} (no such file)")
        elif anchor and dest.endswith(".md") and urllib.parse.unquote(anchor) not in anchors(dest):
            bad.append(f"{where} (no heading #{anchor} in {os.path.relpath(dest, ROOT)})")
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_link_checker_catches_bad_links(tmp_path, monkeypatch):
    """The checker itself: a link outside the repository, a missing file and a missing anchor fail."""
    md = tmp_path / "doc.md"
    md.write_text("# Title\n[up](../outside.md) [gone](nope.md) [self](#title) [bad](#nowhere)\n"
                  "`[code](ignored.md)`\n```\n[fenced](ignored.md)\n```\n![img](pic.png)\n")
    (tmp_path / "pic.png").write_bytes(b"")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    with pytest.raises(AssertionError) as e:
        test_relative_links_resolve_inside_the_repository(str(md))
    msg = str(e.value)
    assert "../outside.md (outside the repository)" in msg and "nope.md (no such file)" in msg
    assert "#nowhere (no heading" in msg
    assert "ignored.md" not in msg and "pic.png" not in msg and "#title" not in msg


def test_slugs_follow_github():
    assert slug("Offline evaluation: COCO in, a viewer out") == "offline-evaluation-coco-in-a-viewer-out"
    assert slug("The main job: `gpu-media dump`") == "the-main-job-gpu-media-dump"
    assert slug("6.2 Keys to paths") == "62-keys-to-paths"


# ---------------------------------------------------------------------- README's Python examples

def python_blocks():
    text = read_text(os.path.join(ROOT, "README.md"))
    return [(start, "\n".join(lines) + "\n") for kind, info, lines, start in split_fences(text)
            if kind == "code" and info in ("python", "py")]


BLOCKS = python_blocks()


def missing_modules(code):
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return sorted(n for n in names if importlib.util.find_spec(n) is None)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("start,code", BLOCKS, ids=[f"README.md:{s}" for s, _ in BLOCKS])
def test_readme_python_example_runs(start, code, tmp_path):
    missing = missing_modules(code)
    if missing:
        pytest.skip(f"README.md:{start} imports {', '.join(missing)}, not installed here")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true")
    script = tmp_path / "example.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], check=False, cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"README.md:{start} failed:\n{r.stdout}\n{r.stderr}"


def test_extras_are_installed_from_the_checkout():
    """The package is installed from a checkout: every extra reads ``pip install ".[x]"``, never the PyPI form."""
    bad = []
    for folder in ("gpu_media", "docs", "scripts", "benchmarks", ".ci"):  # (tests may spell either form)
        for dirpath, dirs, files in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and d != "results"]
            for f in files:
                if f.endswith((".py", ".md", ".html", ".toml", ".sh", ".txt")) or f == "run":
                    path = os.path.join(dirpath, f)
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        if "gpu-media" + "[" in fh.read():
                            bad.append(os.path.relpath(path, ROOT))
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        if "gpu-media" + "[" in fh.read():
            bad.append("README.md")
    assert bad == []
    help_text = subprocess.run([sys.executable, "-m", "gpu_media.cli", "dump", "--help"], capture_output=True,
                               text=True, timeout=60, check=True).stdout
    assert 'pip install ".[ray,s3]"' in " ".join(help_text.split())
