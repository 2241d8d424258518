"""Open a local HTML file in headless Chromium (Debian's /usr/bin/chromium through Playwright) and report what
the browser saw: the page title, every <img> (loaded? natural size?) and the console errors.

The flags keep Chromium off the network (this machine's is closed and the report needs none) and make it run
as root in a container. `make browser` installs Chromium when it is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import ConsoleMessage, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1000, "height": 800}
TIMEOUT_MS = 30_000

# Reads every image once the page's load event fired (data: URLs are decoded by then).
_IMAGES_SCRIPT = """
() => Array.from(document.images, (img, index) => ({
    name: img.dataset.figure || img.id || `image-${index}`,
    alt: img.alt,
    complete: img.complete,
    naturalWidth: img.naturalWidth,
    naturalHeight: img.naturalHeight,
}))
"""


def open_in_chromium(path: Path, *, screenshot: Path | None = None) -> dict[str, Any]:
    """Load ``path`` and return ``{"title", "page_width", "viewport_width", "images": [{"name", "alt",
    "complete", "naturalWidth", "naturalHeight"}], "console_errors", "page_errors", "failed_requests"}``
    (``page_width`` is the document's scroll width: wider than the viewport means something overflows); with
    ``screenshot``, also save a full-page PNG there."""
    console_errors: list[str] = []
    page_errors: list[str] = []
    failed_requests: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("console", on_console)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("requestfailed", lambda request: failed_requests.append(request.url))
            page.goto(path.resolve().as_uri(), wait_until="load", timeout=TIMEOUT_MS)
            images = page.evaluate(_IMAGES_SCRIPT)
            title = page.title()
            page_width = page.evaluate("() => document.documentElement.scrollWidth")
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {
        "title": title,
        "page_width": page_width,
        "viewport_width": VIEWPORT["width"],
        "images": images,
        "console_errors": console_errors,
        "page_errors": page_errors,
        "failed_requests": failed_requests,
    }
