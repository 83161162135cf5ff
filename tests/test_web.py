"""End to end in a real browser: ``harmonixr serve`` driven by Debian's headless Chromium (Playwright).

Skipped when Chromium or Playwright is missing, unless ``HARMONIXR_REQUIRE_BROWSER=1`` (CI sets
it, after installing Debian's ``chromium``): then a missing browser is a failure.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from symusic import Score

from conftest import assert_kept
from harmonixr.generation.demo import example_score
from harmonixr.visualization.pianoroll import bar_ticks
from harmonixr.web.browser import WAIT_MS, chromium_page, chromium_path, studio_server, wait_text

REQUIRED = os.environ.get("HARMONIXR_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.slow  # a server and a browser


def _missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None if chromium_path() else "no chromium on PATH (Debian: apt-get install chromium chromium-driver)"


if _missing() and not REQUIRED:
    pytest.skip(_missing(), allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (url, folder)
    assert _missing() is None, _missing()
    folder = tmp_path_factory.mktemp("studio")
    with studio_server(folder, folder / "prefs.sqlite") as url:
        yield url, folder


@pytest.fixture
def page(server):  # noqa: ANN001, ANN201 - a Playwright page on the studio
    with chromium_page() as page:
        page.goto(server[0])
        page.wait_for_selector("#load-example", timeout=WAIT_MS)
        yield page


def download(page, link: str, out: Path, not_from: str | None = None) -> Path:  # noqa: ANN001
    """Save what the first ``link`` downloads; ``not_from``: wait until its address is not that one
    first (the page shows a new result's text a moment before its new links)."""
    if not_from is not None:
        page.wait_for_function("([s, old]) => (document.querySelector(s)?.href ?? old) !== old",
                               arg=[link, not_from], timeout=WAIT_MS)
    with page.expect_download() as got:
        page.locator(link).first.click()
    got.value.save_as(out)
    return out


def test_infill_hear_download_choose_keep_undo(page, server, tmp_path) -> None:
    url, folder = server
    page.click("#load-example")
    wait_text(page, "#summary", "4 tracks, 10 bars, 163 notes")
    page.fill("#region textarea", "3-4")
    page.click("#infill")
    wait_text(page, "#result-text", "variation 1:")
    told = page.inner_text("#result-text")  # where each variation came from, for the comparison below

    src = page.locator("#result-audio audio").get_attribute("src")
    wav = page.request.get(src).body()
    assert wav[:4] == b"RIFF" and len(wav) > 44_100
    played = page.evaluate("""async () => {
        const audio = document.querySelector('#result-audio audio');
        await audio.play();
        await new Promise(r => setTimeout(r, 800));
        return [audio.paused, audio.currentTime, audio.duration];
    }""")
    assert played[0] is False and played[1] > 0.2 and played[2] > 4.0

    original = example_score("chorale")
    bars = bar_ticks(original)
    named = "bach-chorale-bwv-66-6-4-voices-infill-bars-3-4-1.mid"  # the piece, the operation, the bars, the variation
    midi = download(page, f"#downloads a[download='{named}']", tmp_path / "v1.mid")
    first = page.evaluate("(s) => document.querySelector(s).href", f"#downloads a[download='{named}']")
    assert assert_kept(original, Score(str(midi)), bars[2], bars[4], set(range(4))) > 0

    page.fill("#who textarea", "e2e")
    page.click("#a-better")
    wait_text(page, "#stored", "Stored choice #1")
    with sqlite3.connect(folder / "prefs.sqlite") as db:
        rows = db.execute("SELECT who, choice, midi_a FROM comparisons").fetchall()
    assert rows == [("e2e", "a", midi.read_bytes())]

    page.click("#again")  # next seeds, then seed 0 again: the same music as the first time
    wait_text(page, "#result-text", "seed 2;")
    assert "Stored choice" not in page.inner_text("#stored")  # it was about the variations before
    link = f"#downloads a[download='{named}']"  # each result's files have a folder of their own
    page.wait_for_function("([s, old]) => (document.querySelector(s)?.href ?? old) !== old", arg=[link, first],
                           timeout=WAIT_MS)
    seed_2 = page.evaluate("(s) => document.querySelector(s).href", link)
    page.fill("#seed input", "0")
    page.click("#infill")
    wait_text(page, "#result-text", "seed 0;")
    again = download(page, link, tmp_path / "again.mid", not_from=seed_2).read_bytes()
    requests = [line for line in (folder / "server.log").read_text().splitlines() if "harmonixr.studio" in line]
    assert again == midi.read_bytes(), f"first: {told!r}; again: {page.inner_text('#result-text')!r}; {requests}"

    page.click("#keep")
    wait_text(page, "#summary", "+ infill")
    page.wait_for_timeout(500)
    assert page.locator(".toast-body").count() == 0  # kept without an error toast
    page.click("#undo")
    wait_text(page, "#summary", "Bach, chorale BWV 66.6 (4 voices):")
    page.click("#again")  # after undo, try again still knows the last request
    wait_text(page, "#result-text", "seed 2;")


def edit_cell(page, cell: str, value: str, tries: int = 5) -> None:  # noqa: ANN001 - a Playwright page
    """Write ``value`` into a table ``cell``'s editor, again until the cell shows it: in a full test
    run on 2 busy cores an edit made while the table was still settling was lost, 2 runs in 7; and
    keys typed before the double click had opened the editor went to the cell's text
    ('0-120100-120...'). The editor's own text area is filled instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries):
        page.locator(cell).dblclick()
        editor = page.locator(f"{cell} textarea")
        editor.fill(value)
        editor.press("Enter")
        try:
            page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').split('\\n')[0].trim() === t",
                                   arg=[cell, value], timeout=10_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"{cell} never showed {value!r}: {page.locator(cell).inner_text()!r}")


def test_the_prompt_and_the_per_track_controls_from_the_page(page, tmp_path) -> None:
    """The controls table shows each track's inferred values for the region; a track set to 0 notes
    stays silent, the prompt's reading is shown, and a contradictory prompt is refused by name."""
    page.click("#load-example")
    wait_text(page, "#summary", "4 tracks, 10 bars")
    # the example's own region's table first, as a visitor sees it before typing another (typed sooner,
    # a CI run once waited 120 s for the new region's table: the likeliest cause, the example's table
    # asked for with the old region but answered after the new one's, not shown)
    wait_text(page, "#controls", "track (bars 5-8)")
    page.fill("#region textarea", "3-4")
    page.locator("#region textarea").blur()
    wait_text(page, "#controls", "track (bars 3-4)")  # the region's own table, not the one of bars 5-8 before it
    table = page.inner_text("#controls")
    assert all(name in table for name in ("Soprano", "Alto", "Tenor", "Bass")) and "kept" in table  # the rhythms
    for cell, value in (("cell-1-2", "0"), ("cell-0-4", "100-120")):  # track 2: 0 notes; track 1: velocities
        edit_cell(page, f"#controls [data-testid='{cell}']", value)
    page.fill("#prompt textarea", "very loud")
    page.fill("#variations input[type=number]", "1")
    page.locator("#variations input[type=number]").press("Enter")
    page.click("#infill")
    wait_text(page, "#result-text", "Prompt read as: 'very loud' -> loudness 115")
    made = Score(str(download(page, "#downloads a[download$='-1.mid']", tmp_path / "made.mid")))
    bars = bar_ticks(example_score("chorale"))
    assert not [n for n in made.tracks[1].notes if bars[2] <= n.time < bars[4]]  # the alto, told 0 notes
    soprano = [n.velocity for n in made.tracks[0].notes if bars[2] <= n.time < bars[4]]
    assert soprano and all(100 <= v <= 120 for v in soprano)  # the range asked in the table
    page.fill("#prompt textarea", "slow and fast")
    page.click("#infill")
    wait_text(page, ".toast-wrap", "two values of tempo")
    page.fill("#prompt textarea", "loud and quiet")  # refusals are titled so, and shown one at a time
    page.click("#infill")
    wait_text(page, ".toast-wrap", "two values of loudness")
    shown = page.evaluate("""() => [
        getComputedStyle(document.querySelector('.toast-title'), '::before').content,
        [...document.querySelectorAll('.toast-message-text')].filter(e => e.offsetParent !== null).map(e => e.innerText)]""")
    assert shown[0] == '"Refused"' and len(shown[1]) == 1 and "loudness" in shown[1][0], shown


def test_uploads_good_corrupt_and_oversize(page, tmp_path) -> None:
    good = tmp_path / "mine.mid"
    example_score("folk").dump_midi(str(good))
    page.set_input_files("input[type=file]", good)
    wait_text(page, "#summary", "mine.mid")
    assert f"{Score(str(good)).note_num()} notes" in page.inner_text("#summary")

    corrupt = tmp_path / "broken.mid"
    corrupt.write_bytes(b"MThd\0\0\0\x06\0\x01\0\x02\x01\xe0MTrk\0\0\x10\0\0\x90\x40")
    page.set_input_files("input[type=file]", corrupt)
    wait_text(page, ".toast-body", "broken.mid: truncated")
    huge = tmp_path / "huge.mid"
    huge.write_bytes(b"MThd" + bytes(3 * 1024 * 1024))
    page.set_input_files("input[type=file]", huge)
    wait_text(page, ".toast-wrap", "huge.mid")
    assert "maximum allowed size" in page.inner_text(".toast-wrap")
    page.wait_for_timeout(500)
    summary = page.inner_text("#summary")  # the piece that was open stays open, shown as it was
    assert "mine.mid" in summary and "Error" not in summary
    assert page.locator("#roll .js-plotly-plot").count() == 1


def _call(url: str, api: str, data: list) -> str:
    """A raw call of Gradio's HTTP API (as a visitor's script would send it): the event's stream."""
    import httpx

    url = url.rstrip("/")
    posted = httpx.post(f"{url}/gradio_api/call/{api}", json={"data": data}, timeout=60)
    assert posted.status_code == 200, posted.text
    event = posted.json()["event_id"]
    return httpx.get(f"{url}/gradio_api/call/{api}/{event}", timeout=120).text


def test_the_upload_api_opens_only_uploaded_files(server, tmp_path) -> None:
    """Through Gradio's HTTP API a visitor can name any path of the server in a FileData: what was
    not uploaded is refused (by Gradio, and again by the studio); an upload opens."""
    import httpx

    url, folder = server
    outside = tmp_path / "not-uploaded.mid"
    inside = folder / "not-uploaded.mid"  # in the studio's own folder, which Gradio serves
    for secret in (outside, inside):
        example_score("folk").dump_midi(str(secret))
        forged = {"path": str(secret), "meta": {"_type": "gradio.FileData"}, "orig_name": "song.mid"}
        refused = _call(url, "upload", [forged, "unknown", "5-8"])
        assert f"{Score(str(secret)).note_num()} notes" not in refused
        assert "event: error" in refused or "not a file uploaded" in refused
    mine = tmp_path / "mine.mid"
    example_score("folk").dump_midi(str(mine))
    with mine.open("rb") as f:
        path = httpx.post(f"{url.rstrip('/')}/gradio_api/upload", files={"files": ("mine.mid", f)}, timeout=60).json()[0]
    sent = {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "mine.mid"}
    assert f"{Score(str(mine)).note_num()} notes" in _call(url, "upload", [sent, "unknown", "5-8"])


def test_result_roll_zoom_style_and_new_piece_length(page, tmp_path) -> None:
    """The result roll opens on the region with 2 bars around it, every track in a colour of its
    own, and shows the whole piece when asked; the style chosen for the open piece is the one the
    model is told; a new piece has a length control of its own."""
    page.click("#load-example")
    wait_text(page, "#summary", "style chorale")
    page.fill("#variations input[type=number]", "1")
    page.locator("#variations input[type=number]").press("Enter")
    page.fill("#region textarea", "5-6")
    page.click("#infill")
    wait_text(page, "#result-text", "variation 1:")
    bars, tpq = bar_ticks(example_score("chorale")), 480
    page.wait_for_selector("#result-roll .js-plotly-plot", timeout=WAIT_MS)
    layout = "() => document.querySelector('#result-roll .js-plotly-plot')._fullLayout"
    assert page.evaluate(f"({layout})().xaxis.range") == pytest.approx([bars[2] / tpq, bars[8] / tpq])
    colours = page.evaluate("() => document.querySelector('#result-roll .js-plotly-plot').data"
                            ".slice(0, 4).map(t => t.line.color)")
    assert len(set(colours)) == 4
    page.locator("#whole-piece input").check()
    page.wait_for_function(f"({layout})().xaxis.range[1] > {bars[9] / tpq}", timeout=WAIT_MS)
    assert page.evaluate(f"({layout})().xaxis.range[0]") <= 0

    page.locator("#style input").click()
    page.locator("[role=option]", has_text="folk-german").first.click()
    wait_text(page, "#summary", "style folk-german")

    page.get_by_role("tab", name="New piece").click()
    page.fill("#new-piece-bars input[type=number]", "3")
    page.locator("#new-piece-bars input[type=number]").press("Enter")
    page.click("#generate")
    made = Score(str(download(page, "#downloads a[download$='-3-bars-1.mid']", tmp_path / "new.mid")))
    assert len([t for t in bar_ticks(made) if t < made.end()]) == 3
