"""API-key ids: stable across processes, distinct across keys, never reversible to the key."""

from __future__ import annotations

import subprocess
import sys

from spendwatch.cli import main
from spendwatch.instrumentation.keys import api_key_from_request, api_key_hint, api_key_id
from tests.conftest import make_key


def test_same_key_same_id_in_another_process():
    key = make_key()
    other = subprocess.run(
        [sys.executable, "-m", "spendwatch.cli", "keys", "id"], input=key + "\n", capture_output=True, text=True
    )
    assert other.returncode == 0
    assert other.stdout.strip() == api_key_id(key)


def test_distinct_keys_distinct_ids():
    keys = {make_key() for _ in range(1000)}
    assert len({api_key_id(key) for key in keys}) == 1000


def test_id_and_hint_reveal_at_most_four_characters():
    key = make_key()
    assert key[-4:] == api_key_hint(key)
    assert key not in api_key_id(key) and key[:8] not in api_key_id(key)
    assert api_key_hint("short-key") is None  # four characters of a short key are too much of it


def test_where_keys_are_found():
    assert api_key_from_request({"authorization": "Bearer abc"}, None) == "abc"
    assert api_key_from_request({"x-api-key": "k1", "authorization": "Bearer gateway"}, None) == "k1"
    assert api_key_from_request({"api-key": "k2"}, None) == "k2"
    assert api_key_from_request({"x-goog-api-key": "k3"}, None) == "k3"
    assert api_key_from_request({}, "k4") == "k4"
    assert api_key_from_request({"authorization": "Basic dXNlcg=="}, None) is None


def test_keys_are_found_in_httpx_headers_whatever_their_case_and_order():
    import httpx
    import httpx2

    for module in (httpx, httpx2):
        headers = module.Headers([("Authorization", "Bearer gateway"), ("X-Api-Key", " k1 "), ("x-api-key", "k9")])
        assert api_key_from_request(headers, "query") == "k1"  # the provider's header, the first of them
        assert api_key_from_request(module.Headers({"AUTHORIZATION": "bearer  tok "}), None) == "tok"
        assert api_key_from_request(module.Headers({"x-goog-api-key": "g"}), None) == "g"
        assert api_key_from_request(module.Headers({"accept": "*/*"}), "k4") == "k4"


def test_keys_id_needs_a_key(capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["keys", "id"]) == 2
    assert "no key" in capsys.readouterr().err
