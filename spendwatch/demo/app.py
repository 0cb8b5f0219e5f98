"""The demo's sample app: one service's LLM traffic, sent with httpx2 to the stand-in provider.

Run as `spendwatch run -- python -m spendwatch.demo.app SERVICE`, so it is instrumented exactly as a
user's app would be. Each call names its usage (the stand-in reports what it is told), so the demo's
numbers are realistic and the same on every run.
"""

from __future__ import annotations

import os
import sys

import httpx2

# service -> [(path, body, usage, key header, extra headers)]
SCENARIOS: dict[str, list[tuple[str, dict, str, str, dict]]] = {
    "checkout": [
        *[
            (
                "/v1/chat/completions",
                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise the cart"}]},
                "input=2400,output=180,cache_read=2048",
                "openai",
                {},
            )
        ]
        * 3,
        (
            "/v1/chat/completions",
            {
                "model": "gpt-4o",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "Write the receipt"}],
            },
            "input=900,output=420",
            "openai",
            {},
        ),
        *[
            (
                "/v1/embeddings",
                {"model": "text-embedding-3-small", "input": ["sku-1", "sku-2"]},
                "input=1500",
                "openai",
                {},
            )
        ]
        * 2,
    ],
    "search": [
        *[
            (
                "/v1beta/models/gemini-2.5-flash:generateContent",
                {"contents": [{"parts": [{"text": "rank these"}]}]},
                "input=3200,output=650,reasoning=400",
                "gemini",
                {},
            )
        ]
        * 3,
        (
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
            {"contents": [{"parts": [{"text": "explain"}]}]},
            "input=5000,output=1200,reasoning=700",
            "gemini",
            {},
        ),
    ],
    "support-bot": [
        *[
            (
                "/v1/messages",
                {"model": "claude-sonnet-4-6", "max_tokens": 1024, "messages": [{"role": "user", "content": "Help"}]},
                "input=12000,output=600,cache_read=10000,cache_write=1500",
                "anthropic",
                {},
            )
        ]
        * 3,
        (
            "/v1/messages",
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 512,
                "stream": True,
                "messages": [{"role": "user", "content": "Triage"}],
            },
            "input=1800,output=240",
            "anthropic",
            {},
        ),
        (
            "/v1/messages",
            {"model": "claude-sonnet-4-6", "max_tokens": 1024, "messages": [{"role": "user", "content": "Again"}]},
            "input=100",
            "anthropic",
            {"x-standin-status": "429"},
        ),
        (
            "/v1/chat/completions",
            {
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": "A stream that reports no usage"}],
            },
            "input=0",
            "openai",
            {},
        ),
    ],
}
KEY_VARIABLES = {"checkout": "DEMO_KEY_BACKEND", "search": "DEMO_KEY_SEARCH", "support-bot": "DEMO_KEY_SUPPORT"}


def key_headers(kind: str, key: str) -> dict[str, str]:
    if kind == "anthropic":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if kind == "gemini":
        return {"x-goog-api-key": key}
    return {"authorization": f"Bearer {key}"}


def main(service: str) -> int:
    key = os.environ[KEY_VARIABLES[service]]
    with httpx2.Client(base_url=os.environ["STANDIN"], timeout=30) as client:
        for path, body, usage, kind, extra in SCENARIOS[service]:
            headers = {**key_headers(kind, key), "x-standin-usage": usage, **extra}
            with client.stream("POST", path, json=body, headers=headers) as response:
                response.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
