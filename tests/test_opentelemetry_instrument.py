"""`opentelemetry-instrument python app.py`: no code change, the distro's defaults (OTLP over gRPC), and
every LLM call arrives at the OTLP endpoint — even with the app's traces sampled at zero."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from spendwatch.instrumentation.keys import api_key_id
from tests.conftest import make_key
from tests.otlp_receiver import OtlpReceiver, attributes

APP = """
import os, anthropic, openai
from opentelemetry import trace

openai_client = openai.OpenAI(base_url=os.environ["STANDIN"] + "/v1", api_key=os.environ["OPENAI_KEY"], max_retries=0)
anthropic_client = anthropic.Anthropic(
    base_url=os.environ["STANDIN"], api_key=os.environ["ANTHROPIC_KEY"], max_retries=0
)
with trace.get_tracer("app").start_as_current_span("handle request"):
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-standin-usage": "input=17,output=5"},
    )
    stream = openai_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}, extra_headers={"x-standin-usage": "input=9,output=5"},
    )
    for _ in stream:
        pass
    anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-standin-usage": "input=40,output=5,cache_read=30"},
    )
print("app done")
"""


def test_app_under_opentelemetry_instrument_exports_its_llm_calls(tmp_path: Path, standin):
    app = tmp_path / "app.py"
    app.write_text(APP)
    openai_key, anthropic_key = make_key(), make_key("sk-ant-")
    with OtlpReceiver() as receiver:
        env = {
            **os.environ,
            "STANDIN": standin.base_url,
            "OPENAI_KEY": openai_key,
            "ANTHROPIC_KEY": anthropic_key,
            "OTEL_SERVICE_NAME": "billing-api",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0",  # the app keeps none of its own traces
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        }
        bin_dir = Path(sys.executable).parent
        result = subprocess.run(
            [str(bin_dir / "opentelemetry-instrument"), sys.executable, str(app)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "app done" in result.stdout
        deadline = time.monotonic() + 10
        while len(receiver.spans) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        received = list(receiver.spans)
    assert "Failed to export" not in result.stderr and "Exception" not in result.stderr, result.stderr
    ours = [(resource, span) for resource, scope, span in received if scope == "spendwatch.instrumentation"]
    others = [span.name for resource, scope, span in received if scope != "spendwatch.instrumentation"]
    assert others == []  # sampled out: the app's span and the anthropic SDK's own span
    by_model = {attributes(span)["gen_ai.request.model"]: (resource, attributes(span)) for resource, span in ours}
    assert sorted(by_model) == ["claude-haiku-4-5", "gpt-4o", "gpt-4o-mini"]
    assert all(resource["service.name"] == "billing-api" for resource, _ in by_model.values())
    usage = {
        model: (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) for model, (_, a) in by_model.items()
    }
    assert usage == {"gpt-4o-mini": (17, 5), "gpt-4o": (9, 5), "claude-haiku-4-5": (40, 5)}
    assert by_model["claude-haiku-4-5"][1]["gen_ai.usage.cache_read.input_tokens"] == 30
    assert by_model["gpt-4o"][1]["spendwatch.fingerprint.id"] == api_key_id(openai_key)
    assert by_model["claude-haiku-4-5"][1]["spendwatch.fingerprint.id"] == api_key_id(anthropic_key)


CODE_APP = """
import os, httpx2, spendwatch
spendwatch.instrument()  # no OpenTelemetry set-up of the app's own: export from OTEL_* as the distro would
spendwatch.instrument()
with httpx2.Client(base_url=os.environ["STANDIN"]) as client:
    client.post("/v1/messages", json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []},
                headers={"x-api-key": os.environ["ANTHROPIC_KEY"], "x-standin-usage": "input=12,output=5"})
print("app done")
"""


def test_spendwatch_instrument_sets_up_export_when_the_app_has_none(tmp_path: Path, standin):
    app = tmp_path / "app.py"
    app.write_text(CODE_APP)
    key = make_key("sk-ant-")
    with OtlpReceiver() as receiver:
        env = {
            **os.environ,
            "STANDIN": standin.base_url,
            "ANTHROPIC_KEY": key,
            "OTEL_SERVICE_NAME": "worker",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        }
        result = subprocess.run([sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 10
        while not receiver.spans and time.monotonic() < deadline:
            time.sleep(0.05)
        received = list(receiver.spans)
    assert len(received) == 1, result.stderr
    resource, scope, span = received[0]
    assert (resource["service.name"], scope) == ("worker", "spendwatch.instrumentation")
    assert attributes(span)["gen_ai.usage.input_tokens"] == 12
    assert attributes(span)["spendwatch.fingerprint.id"] == api_key_id(key)
