"""Which attributes of a span are stored: an allow-list, because a deny-list always misses a name.

Instrumentations put prompts and completions under names no list of ours could foresee — the Vercel AI
SDK's `ai.prompt.messages`, OpenInference's `llm.*`, Langfuse's `langfuse.observation.input`, a bare
`prompt`, pydantic-ai's `model_request_parameters` with the system prompt and tool descriptions. So only
these are kept, beside the typed columns:

- the semantic conventions' GenAI and HTTP attributes that carry no content (request parameters,
  usage counts, agent and conversation ids, the tool's name — never messages, instructions, tool
  definitions, arguments or results);
- the resource's identity (service version and namespace, environment, host, Kubernetes pod, region);
- spendwatch's own attributes;
- the names the user lists in `[attributes] keep` (exact names, or patterns such as `app.*`).

Everything else is dropped and only its name is counted (`dropped_attributes`), so a user can see what
to add to `keep`. What is kept still goes through the secret scrubber.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from spendwatch.collector import scrub

ALLOWED_NAMES = frozenset(
    {
        "gen_ai.agent.id",
        "gen_ai.agent.name",
        "gen_ai.conversation.id",
        "gen_ai.data_source.id",
        "gen_ai.output.type",
        "gen_ai.request.choice.count",
        "gen_ai.request.encoding_formats",
        "gen_ai.request.frequency_penalty",
        "gen_ai.request.max_tokens",
        "gen_ai.request.presence_penalty",
        "gen_ai.request.seed",
        "gen_ai.request.temperature",
        "gen_ai.request.top_k",
        "gen_ai.request.top_p",
        "gen_ai.request.service_tier",
        "gen_ai.request.reasoning.effort",
        "gen_ai.embeddings.dimension.count",
        "gen_ai.response.time_to_first_chunk",
        "gen_ai.response.service_tier",
        "gen_ai.openai.request.service_tier",
        "gen_ai.openai.response.service_tier",
        "gen_ai.openai.response.system_fingerprint",
        "openai.request.service_tier",
        "openai.response.service_tier",  # the tier that served the call: it prices it
        "openai.response.system_fingerprint",
        "openai.api.type",
        "gen_ai.openai.api_base",
        "gen_ai.is_streaming",
        "gen_ai.tool.name",
        "gen_ai.tool.call.id",
        "gen_ai.tool.type",
        "gen_ai.token.type",
        "server.port",
        "http.request.method",
        "http.request.resend_count",
        "http.route",
        "url.scheme",
        "url.path",
        "url.full",
        "exception.type",
        "cloud.region",  # where a cloud model ran (Bedrock, Vertex AI)
    }
)
ALLOWED_PREFIXES = ("gen_ai.usage.", "spendwatch.")
# Allowed prefixes whose names would otherwise pass although they carry content.
NEVER_KEPT_PREFIXES = ("spendwatch.content",)

# The resource attributes that say where a call came from (`service.name` has its own column).
RESOURCE_IDENTITY = frozenset(
    {
        "service.namespace",
        "service.version",
        "service.instance.id",
        "deployment.environment",
        "deployment.environment.name",
        "host.name",
        "k8s.cluster.name",
        "k8s.namespace.name",
        "k8s.deployment.name",
        "k8s.pod.name",
        "cloud.provider",
        "cloud.region",
        "cloud.account.id",
        "faas.name",
    }
)
MAX_NAME_CHARS = 128
MAX_VALUE_CHARS = 4096


class KeepList:
    """The user's `[attributes] keep`: exact names and shell-style patterns (`app.*`)."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        exact = {pattern for pattern in self.patterns if not any(char in pattern for char in "*?[")}
        self._exact = frozenset(exact)
        wildcards = [fnmatch.translate(pattern) for pattern in self.patterns if pattern not in exact]
        self._wildcards = re.compile("|".join(wildcards)) if wildcards else None

    def __contains__(self, name: str) -> bool:
        return name in self._exact or (self._wildcards is not None and self._wildcards.match(name) is not None)


NOTHING_MORE = KeepList()


def allowed(name: str, keep: KeepList) -> bool:
    if name in ALLOWED_NAMES:
        return True
    if name.startswith(ALLOWED_PREFIXES) and not name.startswith(NEVER_KEPT_PREFIXES):
        return True
    return name in keep


def kept_attributes(
    attributes: dict[str, Any],
    resource: dict[str, Any],
    typed: frozenset[str],
    keep: KeepList,
    dropped: Counter,
) -> dict[str, Any]:
    """The span's stored attributes; the names of the others are added to `dropped`."""
    kept: dict[str, Any] = {}
    for name, value in resource.items():
        if name in RESOURCE_IDENTITY or (name != "service.name" and name in keep):
            kept[name] = _stored_value(value)
    for name, value in attributes.items():
        if name in typed:
            continue
        if not allowed(name, keep):
            dropped[scrub.safe_name(name[:MAX_NAME_CHARS])] += 1
            continue
        if name not in ALLOWED_NAMES and not name.startswith(ALLOWED_PREFIXES) and scrub.secret_name(name):
            kept[scrub.safe_name(name[:MAX_NAME_CHARS])] = scrub.SCRUBBED  # the user kept `app.*`; not `app.api_key`
            continue
        kept[name[:MAX_NAME_CHARS]] = _stored_value(value)
    return kept


def _stored_value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        value = value[:MAX_VALUE_CHARS]
    return scrub.scrub_value(value)
