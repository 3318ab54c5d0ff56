"""The web page's item browser with comics: cover thumbnail and ComicInfo, in headless
Chromium against a real `mediamill serve`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_web import TOKEN, browser, launcher, server

__all__ = ["browser", "launcher", "server"]  # the fixtures this module uses

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.usefixtures("launcher")
def test_the_item_browser_shows_a_comics_cover_and_comicinfo(
    server: str, browser: Any, tmp_path: Path
) -> None:
    """Given a library of comics tagged by a comic job, when a user browses its comic
    results, then each item shows its cover image and its series, number and year."""
    import httpx
    from playwright.sync_api import expect

    from mediamill.testing.comics import write_comic

    library = tmp_path / "comics"
    write_comic(library / "Saga" / "Saga 007 (2013).cbz", pages=3, seed=5)
    write_comic(library / "Saga" / "Saga 008 (2013).cbz", pages=3, seed=6)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        assert client.post(
            "/api/libraries", json={"path": str(library), "name": "comics"}
        ).is_success
        job = client.post("/api/jobs", json={"processor": "comic", "library": "comics"}).json()
        deadline = time.monotonic() + 60
        while client.get(f"/api/jobs/{job['job_id']}").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the comic job did not complete in 60 s"
            time.sleep(0.1)
        cover = client.get(
            "/api/cover", params={"library": "comics", "path": "Saga/Saga 007 (2013).cbz"}
        )
        assert cover.headers["content-type"] == "image/jpeg"
        assert cover.content[:3] == b"\xff\xd8\xff"
        outside = client.get("/api/cover", params={"library": "comics", "path": "../c.db"})
        assert outside.status_code == 422

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.goto(f"{server}/#token={TOKEN}")
    page.locator("#browser-library").select_option("comics")
    page.locator("#browser-processor").select_option("comic")
    item = page.locator("li.item", has_text="Saga 007 (2013).cbz")
    expect(item.locator(".item-tags")).to_contain_text("Saga · #7 · 2013", timeout=30_000)
    expect(item.locator(".item-meta").first).to_contain_text("3 pages")
    cover = item.locator("img.comic-cover")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=cover.element_handle(), timeout=30_000
    )
    assert problems == [], problems
