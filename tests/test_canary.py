"""Canary: keys, prompt text and completion text appear in no span, attribute or log line of ours."""

from __future__ import annotations

import logging
import secrets

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

import spendwatch
from tests.conftest import EXPORTER, make_key


def test_nothing_secret_or_said_leaves_the_process(monkeypatch, standin, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SPENDWATCH_SWALLOW_INTERNAL_ERRORS", "1")
    prompt = "PROMPT-CANARY-" + secrets.token_hex(8)
    completion = "COMPLETION-CANARY-" + secrets.token_hex(8)
    keys = [make_key(), make_key("sk-ant-"), make_key("AIza"), make_key("az")]
    monkeypatch.setenv("SPENDWATCH_PROVIDER_HOSTS", f"{standin.address}=azure.ai.openai")
    EXPORTER.clear()
    spendwatch.instrument()
    reply = {"x-standin-reply": f"{completion} and more words"}
    messages = [{"role": "user", "content": prompt}]

    oa = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=keys[0], max_retries=0)
    oa.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=reply)
    list(oa.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True, extra_headers=reply))
    oa.responses.create(model="gpt-5", input=prompt, extra_headers=reply)
    oa.embeddings.create(model="text-embedding-3-small", input=prompt)
    with pytest.raises(openai.BadRequestError):  # the error body quotes the prompt back
        oa.chat.completions.create(model="gpt-4o", messages=messages, extra_headers={"x-standin-status": "400"})
    an = anthropic.Anthropic(base_url=standin.base_url, api_key=keys[1], max_retries=0)
    an.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=messages, extra_headers=reply)
    with an.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=messages, extra_headers=reply) as s:
        s.until_done()
    gm = genai.Client(api_key=keys[2], http_options=types.HttpOptions(base_url=standin.base_url, headers=reply))
    gm.models.generate_content(model="gemini-2.5-flash", contents=prompt)
    list(gm.models.generate_content_stream(model="gemini-2.5-flash", contents=prompt))
    with httpx2.Client(base_url=standin.base_url) as client:
        client.post(f"/v1beta/models/gemini-2.5-flash:generateContent?key={keys[2]}", json={"contents": prompt})
        client.post(
            "/openai/deployments/d/chat/completions", json={"messages": messages}, headers={"api-key": keys[3], **reply}
        )
    # A parsing bug in production is logged: its log line must not carry content either.
    from spendwatch.instrumentation.families import anthropic as anthropic_format

    monkeypatch.setattr(anthropic_format.WIRE, "observe", lambda call, obj: (_ for _ in ()).throw(ValueError(str(obj))))
    an.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=messages, extra_headers=reply)

    spans = EXPORTER.get_finished_spans()
    ours = [span for span in spans if span.instrumentation_scope.name == "spendwatch.instrumentation"]
    assert len(ours) == 12
    assert ours[-1].attributes["spendwatch.usage.estimated"] is True  # counted despite the bug
    dumped = "\n".join(span.to_json() for span in spans)  # every span, attribute, event and resource
    ours_log = "\n".join(
        record.getMessage() + str(record.exc_text or "") + str(record.exc_info or "")
        for record in caplog.records
        if record.name.startswith(("spendwatch", "opentelemetry"))
    )
    for canary in (prompt, completion, *keys):
        assert canary not in dumped
        assert canary not in ours_log
    assert "internal error" in ours_log
