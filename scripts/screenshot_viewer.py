"""Regenerate docs/viewer.png: the static viewer on the COCO demo dump, in its default state.

    python scripts/screenshot_viewer.py [--out docs/viewer.png] [--keep DIR]

The dump is the README's offline-evaluation command on ``gpu_media/demo/coco``
(ground truth from instances.json, predictions from results.json; needs pycocotools).

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


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(here, "..", "docs", "viewer.png"))
    p.add_argument("--keep", default=None, help="dump the COCO demo here (kept) instead of a temporary folder")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=1000)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dump_dir = args.keep or tmp
        coco = os.path.join(os.path.dirname(cli.__file__), "demo", "coco")
        if cli.main(["dump", os.path.join(coco, "images"), dump_dir, "--coco", os.path.join(coco, "instances.json"),
                     "--predictions", os.path.join(coco, "results.json")]) != 0:
            return 1
        viewer.write_viewer(dump_dir)
        screenshot(dump_dir, args.out, args.width, args.height)
    print(f"wrote {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
