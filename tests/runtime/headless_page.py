"""An HTML page opened in Debian's chromium, headless, as a reader would open it: what it logged as errors and
every URL it asked for, so that a test can check it opens offline and cleanly."""
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, sync_playwright


@dataclass
class Visit:
    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def offline(self) -> bool:
        """Nothing was fetched from a network: only the file itself and data: URIs."""
        return all(url.startswith(("file:", "data:")) for url in self.requests)

    def image_widths(self) -> list[int]:
        return self.page.eval_on_selector_all("img", "images => images.map(image => image.naturalWidth)")


@contextmanager
def opened(path: Path) -> Iterator[Visit]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            visit = Visit(browser.new_page(viewport={"width": 1200, "height": 900}))
            visit.page.on("console", lambda message: visit.errors.append(message.text)
                          if message.type == "error" else None)
            visit.page.on("pageerror", lambda error: visit.errors.append(str(error)))
            visit.page.on("request", lambda request: visit.requests.append(request.url))
            visit.page.goto(path.as_uri())
            yield visit
        finally:
            browser.close()
