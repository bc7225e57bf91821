"""The inspector page in headless Chromium (Debian's chromium + chromium-driver, driven by
selenium; never a downloaded browser): a known user, a cold user, an unknown item, every
stage shown, and "why not X" for an item lost at the merge, at ranking and at re-ranking
(found from the trace itself, not hard-coded). Skipped when the browser is not installed."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from funnelrec.serve.launch import free_port
from support.browser import chromium_available, headless_chromium

TOKEN = "browser-test-token-0123456789"
MERGE_K = 40  # the tiny catalogue (200 items) fits a 300-item merge: shrink it so it cuts
STAGES = ("user", "recall", "merge", "rank", "rerank", "final")
WAIT_S = 20

if not chromium_available():
    pytest.skip(
        "headless Chromium not installed (apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (dev extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_artifacts: Path) -> Iterator[str]:
    """The offline inspector app (what ``funnelrec inspect`` serves) in a thread."""
    import uvicorn

    from funnelrec.serve.app import create_inspector_app
    from funnelrec.serve.inspector import InspectorSource
    from funnelrec.serve.loading import load_for_serving

    model = load_for_serving(tiny_artifacts, check=False)
    funnel = model.recommender
    funnel.use_merge(funnel.merge_config.model_copy(update={"k": MERGE_K}))
    app = create_inspector_app(InspectorSource(model=lambda: model), TOKEN)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline, "inspector server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="inspector-chromium-")
    driver = headless_chromium(Path(profile), 1400)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _trace(server: str, user: str, **body: Any) -> dict[str, Any]:
    r = httpx.post(
        f"{server}/inspect/api/trace",
        json={"user_id": user, "k": 10, **body},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def lost_items(server: str, tiny_artifacts: Path) -> dict[str, tuple[str, str]]:
    """``{stage: (user, item)}``: an item each stage lost for some known user, read from the
    traces the way an engineer reads the page."""
    users = httpx.get(
        f"{server}/inspect/api/users?limit=50", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()["users"]
    found: dict[str, tuple[str, str]] = {}
    for user in users:
        trace = _trace(server, user)
        merged = {e["item_id"] for e in trace["merge"]["items"]}
        final = {e["item_id"] for e in trace["final"]}
        for channel in trace["channels"]:
            for entry in channel["items"]:
                if entry["item_id"] not in merged:
                    found.setdefault("merge", (user, str(entry["item_id"])))
        for entry in trace["rank"]["items"]:
            if entry["status"] == "scored" and entry["rank"] > 10 and entry["item_id"] not in final:
                found.setdefault("rank", (user, str(entry["item_id"])))
        for change in trace["rerank"]["demoted"]:
            found.setdefault("rerank", (user, str(change["item_id"])))
        if len(found) == 3:
            return found
    raise AssertionError(f"no user of the tiny artifact lost items at every stage: {found}")


def _wait(driver: Any, css: str) -> Any:
    return WebDriverWait(driver, WAIT_S).until(
        lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None)
    )


def _open(driver: Any, server: str) -> None:
    """A fresh page, signed in the way ``funnelrec inspect``'s printed URL signs in."""
    driver.get("about:blank")
    driver.get(f"{server}/inspect#token={TOKEN}")
    _wait(driver, "#request-form")
    assert "token=" not in driver.current_url  # moved out of the address bar


def _trace_in_page(driver: Any, user: str, why_not: str | None = None) -> None:
    box = driver.find_element(By.ID, "user-id")
    box.clear()
    box.send_keys(user)
    if why_not is None:
        driver.find_element(By.ID, "run").click()
        _wait(driver, "#trace")
    else:
        item = driver.find_element(By.ID, "why-not-id")
        item.clear()
        item.send_keys(why_not)
        driver.find_element(By.ID, "why-not-run").click()
        _wait(driver, f"#why-not-result[data-item='{why_not}']")


def _stage_text(driver: Any, stage: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f"[data-stage='{stage}']").text)


def test_the_page_asks_for_the_token_then_traces_a_known_user(
    browser: Any, server: str, lost_items: dict[str, tuple[str, str]]
) -> None:
    browser.get(f"{server}/inspect")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{server}/inspect")
    _wait(browser, "#token-form")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-submit button").click()
    user = lost_items["merge"][0]
    _wait(browser, "#request-form")
    browser.find_element(By.ID, "user-id").send_keys(user)
    # the list answering what was typed, not the one shown at sign-in (replaced when it lands)
    suggestion = _wait(browser, f"#user-suggestions[data-query='{user}'] li[data-user='{user}']")
    suggestion.click()  # a suggestion runs the trace
    _wait(browser, "#trace")
    expected = _trace(server, user)
    for stage in STAGES:
        assert _wait(browser, f"[data-stage='{stage}'] table"), stage
    assert "known" in _stage_text(browser, "user") and "yes" in _stage_text(browser, "user")
    for channel in expected["channels"]:
        assert browser.find_elements(By.CSS_SELECTOR, f"[data-channel='{channel['name']}']")
    final_rows = browser.find_elements(By.CSS_SELECTOR, "[data-stage='final'] tbody tr")
    shown = [row.get_attribute("data-item") for row in final_rows]
    assert shown == [str(e["item_id"]) for e in expected["final"]]
    assert f"merge.k\n{MERGE_K}" in _stage_text(browser, "merge")
    assert "p(click)" in _stage_text(browser, "rank")


def test_a_cold_user_with_tags(browser: Any, server: str) -> None:
    _open(browser, server)
    tags = browser.find_element(By.ID, "tags")
    tags.clear()
    tags.send_keys("c01")
    _trace_in_page(browser, "someone-new")
    text = _stage_text(browser, "user")
    assert "no (cold start)" in text and "c01" in text and "no history" in text
    assert browser.find_elements(By.CSS_SELECTOR, "[data-stage='final'] tbody tr")
    tags.clear()


def test_an_unknown_item_id(browser: Any, server: str, lost_items) -> None:
    _open(browser, server)
    _trace_in_page(browser, lost_items["rank"][0], why_not="no-such-item")
    box = browser.find_element(By.ID, "why-not-result")
    assert box.get_attribute("data-verdict") == "unknown_item"
    assert "not in this artifact's catalogue" in box.text


@pytest.mark.parametrize(
    ("stage", "verdicts", "numbers"),
    [
        ("merge", {"cut_at_merge"}, f"merge.k = {MERGE_K}"),
        ("rank", {"out_ranked"}, "> k = 10"),
        ("rerank", {"demoted_at_rerank"}, "demoted for diversity"),
    ],
)
def test_why_not_names_the_stage_that_lost_the_item(
    browser: Any, server: str, lost_items, stage: str, verdicts: set[str], numbers: str
) -> None:
    user, item = lost_items[stage]
    _open(browser, server)
    _trace_in_page(browser, user, why_not=item)
    box = browser.find_element(By.ID, "why-not-result")
    assert box.get_attribute("data-verdict") in verdicts, box.text
    assert numbers in box.text
    # the item is highlighted where the trace still shows it
    assert browser.find_elements(By.CSS_SELECTOR, f"tr.hit[data-item='{item}']")
