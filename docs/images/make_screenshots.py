"""Regenerate the screenshots of docs/inspector.md: the browser inspector and the run report.

    .venv/bin/python docs/images/make_screenshots.py [--run DIR]

Runs a small simulated demo (``funnelrec demo`` with fast settings; ``--run`` reuses or keeps
its folder), renders its report (``funnelrec report``), serves the inspector on the demo's
artifact (as ``funnelrec inspect`` does) and photographs both in headless Chromium (Debian's
chromium + chromium-driver, driven by selenium; no network). Writes
docs/images/inspector.png, inspector_why_not.png and report.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

IMAGES = Path(__file__).resolve().parent
sys.path.insert(0, str(IMAGES.parents[1] / "tests"))  # the browser set-up the tests share
from support.browser import headless_chromium  # noqa: E402

TOKEN = "screenshot-token-0123456789"
DEMO_ROWS = 30_000
DEMO_SETTINGS = [
    "recall.channels.two_tower.train.epochs=2",
    "rank.train.loop.epochs=2",
    "rank.fusion.trials=5",
    "rank.train.health=false",
    "eval.max_queries=300",
    "eval.latency_requests=50",
    "eval.rerank_sweep_queries=100",
    # every stage serves, so the screenshots show the re-ranker's moves (a guard may bypass
    # a stage on a small run; docs/guards.md)
    "guards.enabled=false",
]
WIDTH = 1400


def run_demo(run: Path) -> None:
    """The demo run and its report (skipped when ``run`` already holds them)."""
    from funnelrec.config import load_config
    from funnelrec.eval.report import write_report
    from funnelrec.eval.run import run_demo as demo

    if not (run / "metrics.json").exists():
        demo(run, DEMO_ROWS, 0, load_config(overrides=DEMO_SETTINGS))
    write_report(run)


def start_inspector(run: Path) -> tuple[str, Any]:
    """The offline inspector on the demo's artifact, in a thread; returns its URL."""
    import uvicorn

    from funnelrec.serve.app import create_inspector_app
    from funnelrec.serve.inspector import InspectorSource, default_items_table
    from funnelrec.serve.launch import free_port
    from funnelrec.serve.loading import load_for_serving

    artifacts = run / "artifacts"
    model = load_for_serving(artifacts)
    source = InspectorSource(model=lambda: model, items=default_items_table(artifacts))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_inspector_app(source, TOKEN), port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def pick_example(base: str) -> tuple[str, str]:
    """A known user whose re-ranker demoted an item for diversity, and that item."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    users = httpx.get(f"{base}/inspect/api/users?limit=50", headers=auth).json()["users"]
    for user in users:
        body = {"user_id": user, "k": 10}
        trace = httpx.post(f"{base}/inspect/api/trace", json=body, headers=auth, timeout=60).json()
        if trace["rerank"]["demoted"] and trace["user"]["history_len"] >= 5:
            return user, str(trace["rerank"]["demoted"][0]["item_id"])
    raise SystemExit("no user with a demoted item among the first 50")


def browser() -> Any:
    profile = Path(tempfile.mkdtemp(prefix="screens-"))
    return headless_chromium(profile, WIDTH, extra_flags=("--hide-scrollbars",))


def full_page(driver: Any, path: Path, max_height: int = 8000) -> None:
    """A screenshot of the whole page (up to ``max_height`` pixels)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(int(height) + 20, max_height))
    time.sleep(0.3)
    driver.save_screenshot(str(path))
    shrink(path)


def shrink(path: Path) -> None:
    """128 colours: a page of flat UI colours and text looks the same at a third of the bytes
    (these files live in the repository)."""
    from PIL import Image

    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
    print(f"wrote {path}")


def photograph(base: str, run: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    user, item = pick_example(base)
    driver = browser()
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(f"{base}/inspect#token={TOKEN}")
        wait.until(lambda d: d.find_element(By.ID, "request-form").is_displayed())
        driver.find_element(By.ID, "user-id").send_keys(user)
        driver.find_element(By.ID, "run").click()
        wait.until(lambda d: d.find_element(By.ID, "trace").is_displayed())
        full_page(driver, IMAGES / "inspector.png")
        driver.set_window_size(WIDTH, 1000)
        driver.find_element(By.ID, "why-not-id").send_keys(item)
        driver.find_element(By.ID, "why-not-run").click()
        wait.until(lambda d: d.find_element(By.ID, "why-not-result").is_displayed())
        driver.set_window_size(WIDTH, 840)
        time.sleep(0.3)
        driver.save_screenshot(str(IMAGES / "inspector_why_not.png"))
        shrink(IMAGES / "inspector_why_not.png")
        driver.get((run / "report" / "index.html").resolve().as_uri())
        full_page(driver, IMAGES / "report.png")
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="demo folder to reuse or keep (default: temp)")
    args = parser.parse_args()
    run = args.run or Path(tempfile.mkdtemp(prefix="funnelrec-screens-")) / "demo"
    run_demo(run)
    base, server = start_inspector(run)
    try:
        photograph(base, run)
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
