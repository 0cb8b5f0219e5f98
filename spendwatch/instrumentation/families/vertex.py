"""Vertex AI: Gemini and Anthropic models under a Google Cloud project.

The paths name the project, the region and the publisher's model
(`/v1/projects/{project}/locations/{region}/publishers/{google|anthropic}/models/{model}:{method}`), so
they are recognised on any host (a private endpoint too). Gemini's methods read as Gemini's API;
Claude's `:rawPredict` / `:streamRawPredict` carry Anthropic's Messages bodies with the model in the path.

The credential is an OAuth access token that changes every hour, so its fingerprint would make a new
"key" per hour; the key id is made from the project instead (`gcp-project:{project}`), the identity
that is billed. Calls under one project add up under one id, whatever service account made them.
"""

from __future__ import annotations

import re
from typing import Any

from spendwatch import semconv
from spendwatch.instrumentation.families import Family, Route, Wire, anthropic, body_streams, gemini, request_json

PROVIDER = "gcp.vertex_ai"

_PROJECT = re.compile(r"/projects/([^/]+)/locations/([^/]+)/")
_GOOGLE = "/publishers/google/"
_ANTHROPIC = "/publishers/anthropic/"


def project_credential(request: Any) -> str | None:
    found = _PROJECT.search(request.path)
    return f"gcp-project:{found.group(1)}" if found else None


def read_request(call: Any, request: Any) -> None:
    gemini.read_request(call, request)
    found = _PROJECT.search(request.path)
    if found:
        call.extra[semconv.CLOUD_REGION] = found.group(2)


def read_claude_request(call: Any, request: Any) -> None:
    read_request(call, request)
    call.request_stream = body_streams(request_json(request))


GEMINI = Wire(read_request, gemini.observe, gemini.on_headers)
CLAUDE = Wire(read_claude_request, anthropic.observe)

FAMILY = Family(
    "vertex",
    routes=(
        Route(
            ":streamGenerateContent",
            semconv.OPERATION_GENERATE_CONTENT,
            GEMINI,
            PROVIDER,
            path_contains=_GOOGLE,
            credential=project_credential,
            always_streams=True,
        ),
        Route(
            ":generateContent",
            semconv.OPERATION_GENERATE_CONTENT,
            GEMINI,
            PROVIDER,
            path_contains=_GOOGLE,
            credential=project_credential,
        ),
        Route(
            ":streamRawPredict",
            semconv.OPERATION_CHAT,
            CLAUDE,
            PROVIDER,
            path_contains=_ANTHROPIC,
            credential=project_credential,
        ),
        Route(
            ":rawPredict",
            semconv.OPERATION_CHAT,
            CLAUDE,
            PROVIDER,
            path_contains=_ANTHROPIC,
            credential=project_credential,
        ),
    ),
    hosts={"aiplatform.googleapis.com": PROVIDER},
    host_suffixes=(("-aiplatform.googleapis.com", PROVIDER),),
)
