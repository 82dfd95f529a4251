"""The web console in a real headless Chromium (Debian's `chromium`, driven by
Playwright; no browser is downloaded): a chat turn streams its text, a waiting
refund is approved from the inbox and its run finishes, a fan-out run opens as a
tree. BATON_SCREENSHOTS=1 also writes the screenshots of docs/images/."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.web.report import render_html, write_png
from baton.web.tree import run_tree
from tests.web_app import Served, serving

CHROMIUM = shutil.which("chromium")
try:
    from playwright.async_api import Browser, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or async_playwright is None,
    reason="needs Debian's chromium (`make browser` installs it) and the playwright "
           "package (the dev extra)")

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
# As the probe of this machine kind starts it: no background traffic to the closed network.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
async def served(env: WorkflowEnvironment) -> AsyncIterator[Served]:
    # Offline models with a latency, so answers stream word by word as a real model's.
    async with serving(env.client, latency_s=1.2) as front:
        yield front


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert async_playwright is not None and CHROMIUM is not None
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1360, "height": 860})
    opened = await context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    await context.close()
    assert errors == [], errors  # no script error on any page


async def screenshot(page: Page, name: str) -> None:
    if os.environ.get("BATON_SCREENSHOTS"):
        IMAGES.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(IMAGES / name))


async def test_a_chat_turn_streams_its_answer(served: Served, page: Page) -> None:
    await page.goto(f"{served.url}/#/chat")
    await page.select_option("#chat-member", "team:support_desk")
    # Every length the answer's text had on screen: more than one partial length means
    # it was drawn as it streamed, not in one piece at the end.
    await page.evaluate("""() => {
        window.seenLengths = new Set();
        new MutationObserver(() => {
            for (const t of document.querySelectorAll('.part .text')) {
                window.seenLengths.add(t.textContent.length);
            }
        }).observe(document.getElementById('chat-log'),
                   {subtree: true, childList: true, characterData: true});
    }""")
    await page.fill("#chat-input", "My invoice shows the wrong amount after I upgraded")
    await page.press("#chat-input", "Enter")
    foot = page.locator(".turn-foot")
    await expect(foot).to_contain_text("answered by billing")
    answer = page.locator(".msg.assistant .part .text").last
    await expect(answer).to_contain_text('regarding "My invoice shows the wrong amount')
    seen: list[int] = await page.evaluate("() => [...window.seenLengths]")
    final = len(await answer.text_content() or "")
    assert len([n for n in seen if 0 < n < final]) >= 2, seen
    await expect(page.locator(".chip.handoff")).to_contain_text("router → billing")
    await page.fill("#chat-input", "Can you also check why the app crashes on login?")
    await page.press("#chat-input", "Enter")
    await expect(page.locator(".turn-foot")).to_have_count(2)
    await expect(page.locator(".msg.assistant .part .text").last).to_contain_text(
        "why the app crashes on login")
    await screenshot(page, "console-chat.png")


async def test_a_waiting_refund_is_approved_from_the_inbox(served: Served,
                                                            page: Page) -> None:
    await page.goto(f"{served.url}/#/runs")
    await page.select_option("#run-member", "clerk")
    await page.fill("#run-prompt", "Refund 250 USD on order A-1001")
    await page.click("#run-start")
    await expect(page.locator(".card.notice")).to_contain_text("waits for a person")
    run_id = page.url.split("#/runs/", 1)[1]
    await page.click("text=open the approvals inbox")
    card = page.locator("article.request", has_text=run_id)
    await expect(card).to_contain_text("issue_refund")
    await expect(card.locator("dl.fields")).to_contain_text("Order id")
    await expect(card.locator("dl.fields")).to_contain_text("A-1001")
    await expect(card.locator(".why")).to_contain_text("approval policy of issue_refund")
    await screenshot(page, "console-inbox.png")
    await card.locator(".note-input").fill("manager ok")
    await card.locator("button.approve").click()
    await expect(card).to_have_count(0)
    await page.goto(f"{served.url}/#/runs/{run_id}")
    await expect(page.locator("h1 .pill")).to_have_text("ok")
    approval = page.locator(".tree-row.row-approval")
    await expect(approval).to_contain_text("approved by web console: manager ok")
    refund = page.locator(".tree-row.row-tool", has_text="refunded 250.0 USD on A-1001")
    await expect(refund).to_contain_text("issue_refund")


async def test_a_fan_out_run_opens_as_a_live_tree(env: WorkflowEnvironment, served: Served,
                                                  page: Page) -> None:
    await page.goto(f"{served.url}/#/runs")
    await page.select_option("#run-member", "research_panel")
    await page.fill("#run-prompt", "Is durable execution worth it for production LLM agents?")
    await page.click("#run-start")
    await expect(page.locator("h1 .pill")).to_have_text("ok")
    branches = page.locator(".tree-row.depth-1.row-run")
    await expect(branches).to_have_count(3)
    for branch in ("academic", "industry", "news"):
        await expect(branches.filter(has_text=branch)).to_contain_text("ok")
    models = page.locator(".tree-row.row-model")
    await expect(models).to_have_count(4)
    await expect(models.filter(has_text="synthesizer")).to_contain_text("tok")
    history: Any = await page.locator(".tree-row.depth-0 a.external").get_attribute("href")
    run_id = page.url.split("#/runs/", 1)[1]
    assert history == f"{served.settings.ui_url}/namespaces/default/workflows/{run_id}"
    await expect(page.locator(".card.answer")).to_contain_text("synthesizer")
    await screenshot(page, "console-tree.png")
    if os.environ.get("BATON_SCREENSHOTS"):  # the same run as a report
        tree = await run_tree(env.client, run_id, link=served.settings.workflow_link)
        await write_png(render_html(tree), IMAGES / "report.png")
