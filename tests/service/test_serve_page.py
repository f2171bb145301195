"""The web page of ``zoo serve`` in a real headless Chromium (Debian's ``chromium``, driven by
Playwright; skipped when either is missing): upload a clip and find its source track, record
from a (fake) microphone, and the API docs; nothing is loaded from anywhere but the server.

``ZOO_SERVE_SCREENSHOT=docs/images/serve.png`` also saves the upload test's screenshot there
(the picture in docs/serving.md).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from serve_helpers import excerpt

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: the browser tests need "
                                "Debian's chromium package (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")

SEGMENT = 2.992
WAIT_MS = 120_000
DONE = "body[data-similar='done'][data-tags='done']"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream",
                  "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


class Watched:
    """A page with every request URL and every console error or page error it had."""

    def __init__(self, browser, **context):
        self.context = browser.new_context(viewport={"width": 960, "height": 900}, **context)
        self.page = self.context.new_page()
        self.urls: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.urls.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))

    def foreign(self, server) -> list[str]:
        return [u for u in self.urls if not u.startswith((server.url + "/", "blob:", "data:"))]


def _not_blank(png: bytes) -> bool:
    from PIL import Image

    colours = Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) > 20


def test_uploading_a_clip_shows_tags_and_finds_its_source_track(server, browser, tmp_path):
    watched = Watched(browser)
    page = watched.page
    page.goto(f"{server.url}/")
    page.wait_for_selector("#status:has-text('4 tracks')", timeout=WAIT_MS)
    clip = excerpt("real_rock_hedgewars", SEGMENT, 6.0, tmp_path / "clip.wav")
    page.set_input_files("#file", str(clip))
    page.wait_for_selector(DONE, timeout=WAIT_MS)

    results = page.locator("#results li")
    assert results.count() == 4
    first = results.first
    assert first.get_attribute("data-path") == "real/real_rock_hedgewars.flac"
    assert "matched 0:03.0-0:09.0" in first.inner_text()
    matched = first.locator(".timeline .matched")
    left = float(matched.get_attribute("style").split("left:")[1].split("%")[0])
    assert left == pytest.approx(100 * SEGMENT / 8.976, abs=1.0)  # the passage, on the track
    assert first.locator("audio").get_attribute("src").startswith("/catalogue/")
    assert page.locator("#top-tags li").count() == 10
    assert _not_blank(page.locator("#taggram").screenshot())
    assert page.locator("#query-name").inner_text() == "clip.wav"

    first.locator("button", has_text="play match").click()  # the catalogue audio plays
    page.wait_for_selector("#results li:first-child .cursor[style*='left']", timeout=WAIT_MS)
    assert watched.foreign(server) == [] and watched.errors == []

    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    target = os.environ.get("ZOO_SERVE_SCREENSHOT")
    if target:  # for the docs: 96 colours keep it small and the text sharp
        from PIL import Image

        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Image.open(shot).convert("RGB").quantize(
            colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            target, optimize=True)
    watched.context.close()


def test_bad_audio_shows_the_servers_message(server, browser, tmp_path):
    watched = Watched(browser)
    page = watched.page
    page.goto(f"{server.url}/")
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF this is not a wave file at all")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("body[data-similar='error']", timeout=WAIT_MS)
    message = page.locator("#error").inner_text()
    assert "broken.wav: " in message and "not an audio file" in message
    watched.context.close()


def test_a_recording_from_the_microphone_is_analysed(server, browser):
    watched = Watched(browser, permissions=["microphone"])
    page = watched.page
    page.goto(f"{server.url}/")
    page.wait_for_selector("#status:has-text('4 tracks')", timeout=WAIT_MS)
    page.click("#record")
    page.wait_for_selector("#record.recording", timeout=WAIT_MS)
    page.wait_for_timeout(4000)  # Chromium's fake microphone: a beep every second
    page.click("#record")
    page.wait_for_selector(DONE, timeout=WAIT_MS)
    assert page.locator("#query-name").inner_text() == "recording.wav"
    assert page.locator("#results li").count() == 4
    assert watched.foreign(server) == [] and watched.errors == []
    watched.context.close()


def test_the_api_docs_render_without_a_cdn(server, browser):
    watched = Watched(browser)
    page = watched.page
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=WAIT_MS)
    assert "/similar" in page.locator(".swagger-ui").inner_text()
    assert watched.foreign(server) == []
    watched.context.close()
