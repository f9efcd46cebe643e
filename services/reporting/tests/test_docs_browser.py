"""The API documentation in a real browser (Debian's Chromium, driven by Playwright): Swagger UI and ReDoc render
from the service's own assets under its Content-Security-Policy, with nothing loaded from elsewhere (eventkit.edge;
the same pages on every service)."""

from __future__ import annotations

from playwright.async_api import async_playwright, expect

from eventkit.testing import CHROMIUM_ARGS, chromium_or_skip, serving
from reporting.bootstrap import build
from reporting.testing import reporting_settings


async def test_swagger_ui_and_redoc_render_from_the_service_itself(database: str, rabbitmq_url: str) -> None:
    executable = chromium_or_skip()
    async with serving(build(reporting_settings(database, rabbitmq_url))) as base_url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            refused: list[str] = []
            elsewhere: list[str] = []
            page.on("console", lambda message: refused.append(message.text)
                    if "Content Security Policy" in message.text else None)
            page.on("request", lambda request: None if request.url.startswith((base_url, f"blob:{base_url}"))
                    else elsewhere.append(request.url))
            await page.goto(f"{base_url}/docs")
            await expect(page.locator(".opblock-summary-path", has_text="/cases/{case_id}/report").first).to_be_visible(
                timeout=20_000)
            await page.goto(f"{base_url}/redoc")
            await expect(page.get_by_role("heading", name="Draft Report")).to_be_visible(timeout=20_000)
        finally:
            await browser.close()
    # ReDoc asks for its logo from its vendor's CDN; the policy refuses it, and nothing else goes out.
    assert all("cdn.redoc.ly" in url for url in elsewhere), elsewhere
    assert all("cdn.redoc.ly" in text for text in refused), refused
