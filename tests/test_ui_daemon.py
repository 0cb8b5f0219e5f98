"""The dashboard inside `spendwatch up`: its token, its cookie, `spendwatch ui`, its port and turning it off."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.collector import Collector, run_cli
from tests.dashboard_data import CONFIG, generate


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ui-daemon")
    db = directory / "spendwatch.duckdb"
    generate(db, datetime.now(UTC), calls=500)
    (directory / "spendwatch.toml").write_text(CONFIG)
    collector = Collector(db, directory / "log", config=directory / "spendwatch.toml", shared=True).start()
    yield collector
    if collector.process.poll() is None:
        assert collector.stop() == 0


def test_spendwatch_ui_prints_the_address_and_the_token_opens_the_page(daemon):
    result = run_cli("ui", "--db", str(daemon.db), "--no-open")
    assert result.returncode == 0, result.stderr
    address = result.stdout.strip()
    assert address.startswith("http://127.0.0.1:") and daemon.info["ui_url"] == address.split("?")[0]
    token = parse_qs(urlsplit(address).query)["token"][0]
    assert token == daemon.info["ui_token"] and token != daemon.info["token"]  # not the read API's token
    with httpx.Client(base_url=daemon.info["ui_url"]) as client:
        refused = client.get("/")
        assert refused.status_code == 401 and "run `spendwatch ui`" in refused.text
        assert len(refused.text.strip().splitlines()) == 1
        assert client.get("/", params={"token": "wrong"}).status_code == 401
        wrong_cookie = {"cookie": f"spendwatch_ui_{urlsplit(address).port}=wrong"}
        assert client.get("/", headers=wrong_cookie).status_code == 401
        redirect = client.get("/", params={"token": token, "period": "24h"})
        assert redirect.status_code == 303 and redirect.headers["location"] == "/?period=24h"
        cookie = redirect.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token in cookie
        page = client.get("/?period=24h")  # the client kept the cookie
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "Spend per hour" in page.text and "script-src" not in page.headers["content-security-policy"]
        assert "Spend per day" in client.get("/?period=bogus&stack=nothing").text  # the defaults
        [(calls,)] = _read(daemon, "SELECT count(*) FROM llm_calls WHERE start_time >= current_date - 6")
        assert f'<strong id="total-calls">{calls:,}</strong>' in client.get("/?period=7d").text


def test_only_the_loopback_names_are_answered(daemon):
    """A page that rebinds its own name to 127.0.0.1 sends that name as the Host: refused, cookie or not."""
    port = urlsplit(daemon.info["ui_url"]).port
    cookie = {"cookie": f"spendwatch_ui_{port}={daemon.info['ui_token']}"}
    with httpx.Client(base_url=daemon.info["ui_url"]) as client:
        assert client.get("/", headers=cookie).status_code == 200
        assert client.get("/", headers={**cookie, "host": f"localhost:{port}"}).status_code == 200
        rebound = client.get("/", headers={**cookie, "host": f"attacker.example:{port}"})
        assert rebound.status_code == 403 and "<" not in rebound.text
        assert client.get("/health", headers={"host": "attacker.example"}).status_code == 403


def test_without_a_display_the_address_is_printed_and_nothing_is_opened(daemon):
    result = run_cli("ui", "--db", str(daemon.db), env={"DISPLAY": "", "WAYLAND_DISPLAY": "", "BROWSER": "false"})
    assert result.returncode == 0 and result.stdout.startswith(daemon.info["ui_url"] + "?token=")


def test_ui_without_a_daemon_is_one_line(tmp_path):
    result = run_cli("ui", "--db", str(tmp_path / "none.duckdb"), "--no-open")
    assert result.returncode == 2 and "no daemon runs on" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_dashboard_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "up", "--db", str(tmp_path / "db.duckdb"), "--http-port", "0", "--grpc-port", "0", "--ui-port", str(port)
        )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"spendwatch: cannot serve the dashboard on 127.0.0.1:{port}: ")
    assert "--ui-port" in line and "--no-ui" in line and "Traceback" not in result.stderr


def test_no_ui_serves_no_dashboard(tmp_path):
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", extra=("--no-ui",)).start()
    daemon_file = json.loads((tmp_path / "spendwatch.duckdb.daemon.json").read_text())
    assert daemon_file["ui_url"] is None and "ui_token" not in daemon_file
    result = run_cli("ui", "--db", str(collector.db), "--no-open")
    assert result.returncode == 2 and "serves no dashboard" in result.stderr
    assert collector.stop() == 0


def _read(daemon, sql):
    result = run_cli("query", "--db", str(daemon.db), "--format", "json", sql)
    assert result.returncode == 0, result.stderr
    return [list(row.values()) for row in json.loads(result.stdout)]
