"""The dashboard page in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Screenshots of each page go to test-output/dashboard_*.png.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import DASHBOARD_TIMINGS

from myriad_storage.store import Store

CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", "/usr/bin/chromedriver"
NEED = "headless browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
    pytest.skip(NEED, allow_module_level=True)
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="browser tests need selenium (pip install selenium)"
)
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "test-output"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(30)
    OUT.mkdir(exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def db(mongo_uri):
    """A fresh database per test with campaign 'grasps' of 40 items: each test stands alone."""
    name = f"test_dashb_{uuid.uuid4().hex[:10]}"
    store = Store(mongo_uri, name)
    store.ensure_indexes()
    store.create_campaign("grasps", [{"seed": i} for i in range(40)])
    yield store, name
    store.client.drop_database(name)
    store.close()


@pytest.fixture
def dash(db, dashboard_serve):
    return dashboard_serve(db[1])


@pytest.fixture
def filled(db, dashboard_attempt, world_capture):
    """15 attempts stored (8 successes) with the images of a real capture."""
    for i in range(15):
        record, _ = dashboard_attempt("grasps", i, backend=f"b{i % 2}", success=i % 2 == 0)
        images = {**world_capture["images"], "post_rgb": world_capture["images"]["pre_rgb"]}
        db[0].store_attempt(record, images)


def wait(driver, cond, timeout: float = 20.0, what: str = ""):
    # Pages re-render while they load: an element read mid-render is retried, not a failure.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    ).until(lambda d: cond(d), message=what)


def counter(driver) -> int | None:
    text = driver.find_element(By.ID, "total-attempts").text
    return int(text) if text.isdigit() else None


def time_bar(driver) -> tuple[list[tuple[str, str]], int] | None:
    """The time-per-phase bar of campaign grasps once it shows: its legend's (phase, text) and its segment count."""
    card = driver.find_element(By.CSS_SELECTOR, '.card[data-campaign="grasps"]')
    legend = card.find_elements(By.CSS_SELECTOR, ".c-time .legend span")
    segments = card.find_elements(By.CSS_SELECTOR, ".c-time .phases > div")
    return ([(e.get_attribute("data-phase"), e.text) for e in legend], len(segments)) if legend else None


def test_overview_counter_rises_during_collection(browser, dash, db, dashboard_attempt):
    store = db[0]
    store.heartbeat("b0", host="localhost", state="running", campaign="grasps", attempts=0, rate=0.0)
    for i in range(3):
        store.store_attempt(*dashboard_attempt("grasps", i, backend=f"b{i % 2}", success=i % 2 == 0))
    browser.get(dash.url)
    wait(browser, lambda d: counter(d) == 3, what="overview shows the 3 stored attempts")

    def collect() -> None:  # a running collection: attempts arrive one by one
        for i in range(3, 15):
            store.store_attempt(*dashboard_attempt("grasps", i, backend=f"b{i % 2}", success=i % 2 == 0))
            store.heartbeat(
                "b0", "grasps", state="running", current_item=f"grasps/{i:06d}", attempts=i + 1, rate=4.0
            )
            time.sleep(0.15)

    writer = threading.Thread(target=collect)
    writer.start()
    seen = {3}

    def reached_15(d) -> bool:  # one read per poll: with two, the page could change between them
        seen.add(c := counter(d))
        return c == 15

    try:
        wait(browser, reached_15, what="counter reaches 15")
    finally:
        writer.join()
    assert len(seen - {None}) >= 3, (
        f"the counter should rise in steps while attempts arrive, saw {sorted(seen)}"
    )
    card = browser.find_element(By.CSS_SELECTOR, '.card[data-campaign="grasps"]')
    assert card.find_element(By.CSS_SELECTOR, ".c-attempts").text == "15"
    assert len(card.find_elements(By.CSS_SELECTOR, "svg.plot path")) == 2
    # where an attempt's time goes: a segment and a legend entry per phase (the total is the bar's length)
    phases = [k for k in DASHBOARD_TIMINGS if k != "total"]
    legend, segments = wait(browser, time_bar, what="the time-per-phase bar")
    assert [k for k, _ in legend] == phases and segments == len(phases)
    share = DASHBOARD_TIMINGS["reset"] / sum(DASHBOARD_TIMINGS[k] for k in phases)
    assert legend[0][1] == f"reset 0.250 s ({100 * share:.1f}%)"
    assert "grasps/000014" in browser.find_element(By.ID, "backends").text
    browser.save_screenshot(str(OUT / "dashboard_overview.png"))


def test_filter_to_successes(browser, dash, filled):
    browser.get(dash.url + "#samples?campaign=grasps")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.view") == "samples")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#samples tbody tr")) >= 15, what="all rows")
    Select(browser.find_element(By.NAME, "label")).select_by_value("success")
    browser.find_element(By.ID, "apply").click()

    def only_successes(d) -> bool:
        # Read the cells in one script call: the table re-renders while the filter applies (no stale elements).
        labels = d.execute_script(
            "return [...document.querySelectorAll('#samples td.label')].map(e => e.textContent.trim())"
        )
        return len(labels) == 8 and set(labels) == {"success"}

    wait(browser, only_successes, what="8 successes listed")
    assert "label=success" in browser.current_url
    browser.save_screenshot(str(OUT / "dashboard_samples.png"))


def test_open_attempt_images_load(browser, dash, filled):
    browser.get(dash.url + "#samples?campaign=grasps&label=success")
    link = wait(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, "a.attempt-link"), what="an attempt link"
    )[0]
    key = link.text
    link.click()
    wait(browser, lambda d: d.find_element(By.ID, "attempt-key").text == key, what="attempt view")

    def loaded(d) -> bool:
        return d.execute_script(
            "const ims=[...document.querySelectorAll('#images img')];"
            "return ims.length===5 && ims.every(i=>i.complete && i.naturalWidth>0);"
        )

    wait(browser, loaded, what="pre/post RGB, grasp, depth and segmentation images load")
    assert browser.execute_script("return document.getElementById('img-pre-rgb').naturalWidth") == 472
    assert f'"attempt_key": "{key}"' in browser.find_element(By.ID, "attempt-doc").text
    browser.save_screenshot(str(OUT / "dashboard_attempt.png"))


def test_work_items_page(browser, dash, filled):
    browser.get(dash.url + "#work?campaign=grasps&state=pending")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.view") == "work")
    rows = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#work tbody tr"), what="work item rows")
    assert all("pending" in r.text for r in rows) and rows[0].text.startswith("15")
    browser.save_screenshot(str(OUT / "dashboard_work_items.png"))


def test_models_table(browser, dash, db, dashboard_attempt, dashboard_model):
    browser.get(dash.url + "#models")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.view") == "models")
    wait(browser, lambda d: "no models yet" in d.find_element(By.ID, "models").text, what="the empty table")
    store = db[0]
    for i in range(5):  # 3 of 5 successes with v1
        record, images = dashboard_attempt("grasps", i, success=i < 3)
        record["params"] = {"seed": i, "strategy": "learned", "model_version": "v1"}
        store.store_attempt(record, images)
    assert [dashboard_model(store, ["random"], seed) for seed in (0, 1)] == ["v1", "v2"]
    browser.refresh()

    def versions(d) -> list[str]:
        return d.execute_script(
            "return [...document.querySelectorAll('#models tbody tr')].map(r => r.dataset.version)"
        )

    wait(browser, lambda d: versions(d) == ["v2", "v1"], what="the models, newest first")
    row = browser.find_element(By.CSS_SELECTOR, '#models tr[data-version="v1"]')
    assert "3/5 (60.0%)" in row.text and row.find_element(By.CSS_SELECTOR, ".m-campaigns").text == "grasps"
    browser.save_screenshot(str(OUT / "dashboard_models.png"))
