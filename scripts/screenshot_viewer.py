"""Regenerate docs/viewer.png: the static viewer on the COCO demo dump, in its default state.

    python scripts/screenshot_viewer.py [--out docs/viewer.png] [--keep DIR]
    python scripts/screenshot_viewer.py --eval [--out docs/viewer-eval.png] [--keep DIR]

The dump is the README's offline-evaluation command on ``gpu_media/demo/coco``
(ground truth from instances.json, predictions from results.json; needs pycocotools).
With ``--eval`` it is evaluated too (``gpu-media dump ... --eval --draw-boxes``), and the
picture shows the evaluation panel and the images sorted worst F1 first.

Needs Chromium (Debian: ``apt-get install chromium``; or GPU_MEDIA_CHROMIUM=/path/to/chrome)
and ``pip install playwright`` (the system browser is used: no ``playwright install``).
The outlines on the photographs are the viewer's own (switchable) ones: nothing is burned in.
No control is touched: the screenshot shows the defaults (the first mask key at low opacity,
boxes not burned into the pixels on).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from gpu_media import cli, viewer


def screenshot(dump_dir: str, out: str, width: int = 1400, height: int = 1000, scale: float = 1) -> None:
    from playwright.sync_api import sync_playwright

    exe = viewer.find_chromium()
    if not exe:
        sys.exit("no Chromium: apt-get install chromium (or set GPU_MEDIA_CHROMIUM)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=list(viewer.CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("file://" + os.path.abspath(os.path.join(dump_dir, viewer.INDEX_HTML)))
        page.wait_for_function("window.gpuMediaViewer !== undefined")

        # nothing set: the page as a user first sees it (its defaults, docs/viewer.png)
        page.wait_for_function("""() => Array.from(document.querySelectorAll('#grid img'))
            .filter(i => getComputedStyle(i).display !== 'none' && i.getBoundingClientRect().top < innerHeight)
            .every(i => i.complete && i.naturalWidth > 0)""")
        page.wait_for_timeout(300)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        page.screenshot(path=out)
        browser.close()
    if errors:
        sys.exit(f"page errors: {errors}")


def screenshot_eval(dump_dir: str, out: str, width: int = 1400, height: int = 1250, scale: float = 1) -> None:
    """The evaluation panel and the gallery sorted worst F1 first (one click on "worst F1")."""
    from playwright.sync_api import sync_playwright

    exe = viewer.find_chromium()
    if not exe:
        sys.exit("no Chromium: apt-get install chromium (or set GPU_MEDIA_CHROMIUM)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=list(viewer.CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("file://" + os.path.abspath(os.path.join(dump_dir, viewer.INDEX_HTML)))
        page.wait_for_function("window.gpuMediaViewer !== undefined")
        if page.locator("#eval-panel").is_hidden():
            sys.exit("the dump has no evaluation (no 'eval' section in its index)")
        page.eval_on_selector("#thumb-select", """e => { e.value = '192';
                                                 e.dispatchEvent(new Event('change', {bubbles: true})); }""")
        page.eval_on_selector("#summary", "e => { e.open = false; }")  # the per-class pixel table: the panel says more
        for i in range(page.locator("#mask-controls .layer-toggle").count()):  # outlines only: outcomes read best
            page.locator("#mask-controls .layer-toggle").nth(i).uncheck()
        for i in range(page.locator("#box-controls .layer-toggle").count()):  # the page's outlines, by outcome
            page.locator("#box-controls .layer-toggle").nth(i).check()
        page.locator("#eval-controls button.ev-sort[data-sort='f1']").click()
        page.wait_for_function("""() => Array.from(document.querySelectorAll('#grid img'))
            .filter(i => getComputedStyle(i).display !== 'none' && i.getBoundingClientRect().top < innerHeight)
            .every(i => i.complete && i.naturalWidth > 0)""")
        page.wait_for_timeout(300)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        page.screenshot(path=out)
        browser.close()
    if errors:
        sys.exit(f"page errors: {errors}")


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="docs/viewer.png (docs/viewer-eval.png with --eval)")
    p.add_argument("--eval", action="store_true", help="evaluate (--eval --draw-boxes) and show the evaluation")
    p.add_argument("--keep", default=None, help="dump the COCO demo here (kept) instead of a temporary folder")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=None, help="1000 (1250 with --eval)")
    args = p.parse_args(argv)
    if args.height is None:
        args.height = 1250 if args.eval else 1000
    if args.out is None:
        args.out = os.path.join(here, "..", "docs", "viewer-eval.png" if args.eval else "viewer.png")
    with tempfile.TemporaryDirectory() as tmp:
        dump_dir = args.keep or tmp
        coco = os.path.join(os.path.dirname(cli.__file__), "demo", "coco")
        if cli.main(["dump", os.path.join(coco, "images"), dump_dir, "--coco", os.path.join(coco, "instances.json"),
                     "--predictions", os.path.join(coco, "results.json")]
                    + (["--eval", "--draw-boxes"] if args.eval else [])) != 0:
            return 1
        viewer.write_viewer(dump_dir)
        if args.eval:
            screenshot_eval(dump_dir, args.out, args.width, args.height)
        else:
            screenshot(dump_dir, args.out, args.width, args.height)
    print(f"wrote {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
