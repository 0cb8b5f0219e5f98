"""End to end: the daemon on a generated database, its dashboard in headless Chromium, each panel's
numbers against SQL asked of the daemon's read API, a chart drawn, the token required, screenshots.

Debian's chromium and chromium-driver are used as installed (`.ci/run` installs them); Selenium is given
both paths, so it never looks for a browser or a driver on the network. Without them the test is
skipped on a workstation and fails under CI (`CI` set), so CI cannot pass it by skipping it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.collector import Collector, run_cli
from tests.dashboard_data import CONFIG, MARKUP_SERVICE, NEW_KEY, generate

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
PERIOD_START = "current_date - 29"  # the 30d period: today and the 29 days before it, in UTC


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def daemon(tmp_path):
    from datetime import UTC, datetime

    db = tmp_path / "spendwatch.duckdb"
    generate(db, datetime.now(UTC), calls=3000)
    (tmp_path / "spendwatch.toml").write_text(CONFIG)
    collector = Collector(db, tmp_path / "log", config=tmp_path / "spendwatch.toml").start()
    yield collector
    if collector.process.poll() is None:
        assert collector.stop() == 0


def sql(daemon, text: str) -> list[list]:
    """An answer from the daemon's read API: what the dashboard is checked against."""
    answer = httpx.post(
        daemon.info["read_url"] + "/query",
        json={"sql": text},
        headers={"authorization": f"Bearer {daemon.info['token']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


def usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:,.4f}"


def save(driver, path: Path) -> None:
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    if os.environ.get("SPENDWATCH_TEST_ARTIFACTS"):
        artifacts = Path(os.environ["SPENDWATCH_TEST_ARTIFACTS"])
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, artifacts / path.name)


def test_dashboard_in_chromium_shows_what_the_sql_gives(daemon, browser, tmp_path):
    from selenium.webdriver.common.by import By

    result = run_cli("ui", "--db", str(daemon.db), "--no-open")
    assert result.returncode == 0, result.stderr
    address = result.stdout.strip()
    base = daemon.info["ui_url"]

    browser.get(base)  # no token, no cookie
    assert "run `spendwatch ui`" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(address)  # the token: a cookie, and the address without it
    assert "token" not in browser.current_url and urlsplit(browser.current_url).path == "/"
    browser.get(base + "?period=30d&stack=provider")

    def text(selector: str) -> str:
        return browser.find_element(By.CSS_SELECTOR, selector).text

    # The summary.
    [[total, calls]] = sql(daemon, f"SELECT sum(cost_usd), count(*) FROM llm_calls WHERE start_time >= {PERIOD_START}")
    assert text("#total-spend") == usd(total) and text("#total-calls") == f"{calls:,}"

    # Spend over time: one group of bars per day, drawn, each day's total as the SQL's.
    days = dict(
        sql(
            daemon,
            f"SELECT strftime(date_trunc('day', start_time), '%Y-%m-%dT%H:%M:%S'), sum(cost_usd) FROM llm_calls "
            f"WHERE start_time >= {PERIOD_START} AND cost_usd IS NOT NULL GROUP BY 1",
        )
    )
    buckets = browser.find_elements(By.CSS_SELECTOR, "#spend svg.chart g.bucket")
    assert len(buckets) == 30
    for bucket in buckets:
        day = bucket.get_attribute("data-bucket")
        assert float(bucket.get_attribute("data-total")) == pytest.approx(days.get(day, 0), abs=1e-6)
    drawn = browser.execute_script(
        "return [...document.querySelectorAll('#spend svg.chart g.bucket rect')]"
        ".map(r => r.getBoundingClientRect().height)"
    )
    assert len(drawn) >= len(days) and all(height > 0 for height in drawn)
    legend = {
        item.get_attribute("data-series"): item.text for item in browser.find_elements(By.CSS_SELECTOR, ".legend li")
    }
    for provider, spent in sql(
        daemon,
        f"SELECT provider, sum(cost_usd) FROM llm_calls WHERE start_time >= {PERIOD_START} GROUP BY 1 "
        "HAVING sum(cost_usd) > 0",
    ):
        assert legend[provider].endswith(usd(spent))

    # Budgets: this month's spend against the monthly rule, today's per provider against the daily one.
    [[month]] = sql(daemon, "SELECT sum(cost_usd) FROM llm_calls WHERE start_time >= date_trunc('month', now())")
    monthly = browser.find_element(By.CSS_SELECTOR, ".budget[data-rule='monthly-all']")
    assert monthly.find_element(By.CSS_SELECTOR, ".spent-value").text == usd(month)
    assert monthly.find_element(By.CSS_SELECTOR, ".limit-value").text == "$40.00"
    assert len(monthly.find_elements(By.CSS_SELECTOR, "line.threshold")) == 3
    today = dict(
        sql(daemon, "SELECT provider, sum(cost_usd) FROM llm_calls WHERE start_time >= current_date GROUP BY 1")
    )
    daily = browser.find_elements(By.CSS_SELECTOR, ".budget[data-rule='daily-per-provider']")
    shown = {bar.find_element(By.CSS_SELECTOR, ".name").text.split(" · ")[1]: bar for bar in daily}
    assert shown.keys() == today.keys()
    for provider, spent in today.items():
        assert shown[provider].find_element(By.CSS_SELECTOR, ".spent-value").text == usd(spent or 0)

    # The top tables: names, spend, tokens, requests, error rate, p95, cache hits, in the SQL's order.
    names = {"k1a2b3c4d5e6f7a8": "production", "k9f8e7d6c5b4a3f2": "batch & backfill"}
    for panel, column in (("keys", "api_key_id"), ("models", "response_model"), ("services", "service_name")):
        expected = sql(
            daemon,
            f"""SELECT {column}, max(api_key_hint), sum(cost_usd), sum(input_tokens + output_tokens), count(*),
                       count(*) FILTER (error_type IS NOT NULL) * 1.0 / count(*), quantile_cont(duration_ms, 0.95),
                       sum(cache_read_tokens) * 1.0 / sum(input_tokens)
                FROM llm_calls WHERE start_time >= {PERIOD_START} GROUP BY 1 ORDER BY 3 DESC NULLS LAST""",
        )
        rows = browser.find_elements(By.CSS_SELECTOR, f"#top-{panel} tr")[1:]
        assert len(rows) == len(expected)
        for row, (group, hint, spent, tokens, requests, errors, p95, cache) in zip(rows, expected, strict=True):
            cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            label = (names.get(group) or f"{group[:8]} …{hint}") if panel == "keys" else group
            assert cells == [
                label,
                "—" if spent is None else usd(spent),
                f"{tokens:,}",
                f"{requests:,}",
                f"{errors:.1%}",
                f"{p95:,.0f} ms",
                f"{cache:.1%}",
            ]

    # Alerts with their delivery state, unpriced models, the new key.
    alerts = sql(daemon, "SELECT title, state FROM alerts ORDER BY created_at DESC")
    rows = browser.find_elements(By.CSS_SELECTOR, "#alerts tr")[1:]
    shown_alerts = [
        (
            row.find_element(By.CSS_SELECTOR, ".title").get_attribute("textContent"),
            row.find_element(By.CSS_SELECTOR, ".state").text,
        )
        for row in rows
    ]
    assert shown_alerts == [(title, state) for title, state in alerts]
    [[model, unpriced]] = sql(
        daemon, "SELECT response_model, count(*) FROM llm_calls WHERE cost_usd IS NULL GROUP BY 1"
    )
    assert [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#unpriced td")][:3] == [
        model,
        "acme",
        f"{unpriced:,}",
    ]
    new_keys = browser.find_elements(By.CSS_SELECTOR, "#new-keys tr")[1:]
    assert [row.find_element(By.TAG_NAME, "td").text for row in new_keys] == [f"{NEW_KEY[0][:8]} …{NEW_KEY[1]}"]

    # A service named with markup is shown as text; nothing on the page runs.
    assert MARKUP_SERVICE in text("#top-services")
    assert browser.execute_script("return document.scripts.length") == 0

    # Screenshots: a laptop, and a phone with nothing wider than its screen.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height)
    save(browser, tmp_path / "dashboard.png")
    browser.set_window_size(390, 844)
    browser.get(base + "?period=7d&stack=service")
    width, viewport = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= viewport, f"the page is {width}px wide on a {viewport}px screen"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#spend svg.chart g.bucket")) == 7
    save(browser, tmp_path / "dashboard-phone.png")
    assert daemon.stop() == 0
