"""The README's screenshots of the web studio (docs/studio-*.png), taken in headless Chromium.

Run: ``make screenshots`` (= ``.venv/bin/python scripts/screenshots.py``). It starts ``harmonixr
serve`` with the shipped model and a throw-away preference store, then drives the page as a
visitor would: open the chorale example, infill bars 3-4, compare two variations, write a new
piece, and try a corrupt upload.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harmonixr.web.browser import chromium_page, studio_server, wait_text


def shoot(page, out: Path, first: str, last: str) -> Path:  # noqa: ANN001
    """The part of the page from the top of ``first`` to the bottom of ``last``."""
    top = page.locator(first).bounding_box()
    bottom = page.locator(last).bounding_box()
    page.screenshot(path=str(out), full_page=True, clip={"x": 0, "y": max(0, top["y"] - 10), "width": 1400,
                                                           "height": bottom["y"] + bottom["height"] - top["y"] + 20})
    print(f"wrote {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="folder for the PNG files")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, studio_server(Path(tmp), Path(tmp) / "prefs.sqlite") as url, \
            chromium_page() as page:
        page.goto(url)
        page.click("#load-example")
        wait_text(page, "#summary", "notes")
        page.fill("#region textarea", "3-4")
        page.locator("#tracks label", has_text="Alto").click()
        page.locator("#tracks label", has_text="Tenor").click()
        page.wait_for_timeout(1500)
        shoot(page, out / "studio-open.png", "h1", "#infill")
        page.click("#infill")
        wait_text(page, "#result-text", "variation 1:")
        page.wait_for_timeout(1500)
        shoot(page, out / "studio-infill.png", "#result-text", "#keep")
        page.fill("#who textarea", "screenshot")
        page.click("#b-better")
        wait_text(page, "#stored", "Stored choice")
        shoot(page, out / "studio-compare.png", "#pick-a", "#stored")
        page.get_by_role("tab", name="New piece").click()
        page.click("#generate")
        wait_text(page, "#result-text", "generate")
        page.wait_for_timeout(1500)
        shoot(page, out / "studio-generate.png", "#new-style", "#result-roll")
        broken = Path(tmp) / "broken.mid"
        broken.write_bytes(b"MThd\0\0\0\x06\0\x01\0\x02\x01\xe0MTrk\0\0\x10\0\0\x90\x40")
        page.set_input_files("input[type=file]", broken)
        wait_text(page, ".toast-body", "broken.mid")
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "studio-error.png"))
        print(f"wrote {out / 'studio-error.png'}")


if __name__ == "__main__":
    main()
