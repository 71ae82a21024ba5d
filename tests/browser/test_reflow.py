"""Reflow (issue #4, WCAG 1.4.10): at 320 CSS pixels wide, which is 1280
pixels at 400% zoom, no public page scrolls sideways, in Dutch and in
English. Screenshots of the main pages at 320 and 1280 pixels go to
test-artifacts/screenshots/ (kept out of git) for a person to look at."""

import pytest

from .support import DESKTOP, NARROW, page_width, too_wide, tour_public_pages

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]

SCREENSHOT_PAGES = {
    "home",
    "lab",
    "signup-errors",
    "confirm",
    "seat",
    "waitlist",
    "privacy",
    "accessibility",
    "selfservice-plan",
}


@pytest.mark.parametrize("language", ["nl", "en"])
def test_no_public_page_scrolls_sideways_at_320_pixels(page, portal, settings, screenshots, language):
    """Issue #4: document width <= 320 CSS pixels on every public page at a
    320 pixel wide viewport; screenshots at 320 and 1280 pixels."""
    for old in screenshots.glob(f"{language}-*.png"):
        old.unlink()
    page.set_viewport_size(NARROW)
    too_wide_pages: dict[str, str] = {}

    def check(name: str) -> None:
        width = page_width(page)
        if width > NARROW["width"]:
            too_wide_pages[name] = f"{name} ({page.url}): {width}px wide; sticking out: {too_wide(page)}"
        if name in SCREENSHOT_PAGES:
            page.screenshot(path=screenshots / f"{language}-{name}-320.png", full_page=True)
            page.set_viewport_size(DESKTOP)
            page.screenshot(path=screenshots / f"{language}-{name}-1280.png", full_page=True)
            page.set_viewport_size(NARROW)

    tour_public_pages(page, portal, language=language, settings=settings, check=check)

    assert not too_wide_pages, "\n".join(too_wide_pages.values())
    written = {path.name for path in screenshots.glob(f"{language}-*.png")}
    assert {f"{language}-{name}-{width}.png" for name in SCREENSHOT_PAGES for width in (320, 1280)} <= written
