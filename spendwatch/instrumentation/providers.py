"""Which HTTP requests are LLM API calls, and whose.

Provider knowledge is data: a table of hosts to semconv provider names, and a table of API paths to the
wire format (`formats.*`) that reads them. The path decides the wire format, the host decides the
provider, so an OpenAI-compatible gateway on a custom host is still read as OpenAI's format. On a host
no table names (and `SPENDWATCH_PROVIDER_HOSTS` does not name either), a recognised path still counts,
under the wire format's default provider name (`openai`, `anthropic`, `gcp.gemini`, `ollama`).

`classify` runs on every HTTP request the app makes, so it is built for the miss: a method comparison
and one `str.endswith` with a tuple, both in C, before anything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType

from spendwatch import semconv
from spendwatch.instrumentation.formats import anthropic, gemini, ollama, openai

# Exact hosts (or host:port) to `gen_ai.provider.name`.
PROVIDER_HOSTS: dict[str, str] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "aiplatform.googleapis.com": "gcp.vertex_ai",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "openrouter.ai": "openrouter",
    "api.together.xyz": "together_ai",
    "api.together.ai": "together_ai",
    "api.fireworks.ai": "fireworks_ai",
    "localhost:11434": "ollama",
    "127.0.0.1:11434": "ollama",
}

# Host suffixes for providers whose hosts name the customer's resource or region.
PROVIDER_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.openai"),
    ("-aiplatform.googleapis.com", "gcp.vertex_ai"),
)


@dataclass(frozen=True, slots=True)
class Route:
    """An API path and how to read it."""

    path_suffix: str
    wire_format: ModuleType
    operation: str


# Most specific first: "/api/embeddings" before "/embeddings", "/chat/completions" before "/completions".
ROUTES: tuple[Route, ...] = (
    Route(":streamGenerateContent", gemini, semconv.OPERATION_GENERATE_CONTENT),
    Route(":generateContent", gemini, semconv.OPERATION_GENERATE_CONTENT),
    Route(":embedContent", gemini, semconv.OPERATION_EMBEDDINGS),
    Route(":batchEmbedContents", gemini, semconv.OPERATION_EMBEDDINGS),
    Route("/api/chat", ollama, semconv.OPERATION_CHAT),
    Route("/api/generate", ollama, semconv.OPERATION_TEXT_COMPLETION),
    Route("/api/embed", ollama, semconv.OPERATION_EMBEDDINGS),
    Route("/api/embeddings", ollama, semconv.OPERATION_EMBEDDINGS),
    Route("/chat/completions", openai, semconv.OPERATION_CHAT),
    Route("/completions", openai, semconv.OPERATION_TEXT_COMPLETION),
    Route("/responses", openai, semconv.OPERATION_CHAT),
    Route("/embeddings", openai, semconv.OPERATION_EMBEDDINGS),
    Route("/v1/messages", anthropic, semconv.OPERATION_CHAT),
)
_ROUTE_SUFFIXES = tuple(route.path_suffix for route in ROUTES)

PROVIDER_HOSTS_ENV = "SPENDWATCH_PROVIDER_HOSTS"


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    provider: str
    known_host: bool  # False: recognised by its path alone, so its response must prove it is an LLM call


class Classifier:
    """Decides, per request, whether it is an LLM API call (and which)."""

    def __init__(self, extra_hosts: dict[str, str] | None = None) -> None:
        self._hosts = {**PROVIDER_HOSTS, **(extra_hosts or {})}

    @classmethod
    def from_env(cls) -> Classifier:
        return cls(parse_provider_hosts(os.environ.get(PROVIDER_HOSTS_ENV, "")))

    @staticmethod
    def may_be_llm_call(method: str, path: str) -> bool:
        """The cheap first look every request of the app gets: model calls are POSTs to known paths."""
        return method == "POST" and path.endswith(_ROUTE_SUFFIXES)

    def classify(self, method: str, host: str, port: int | None, path: str) -> Match | None:
        if not self.may_be_llm_call(method, path):
            return None
        route = next(route for route in ROUTES if path.endswith(route.path_suffix))
        provider = self.provider_for(host, port)
        if provider is None:
            return Match(route, route.wire_format.DEFAULT_PROVIDER, known_host=False)
        return Match(route, provider, known_host=True)

    def provider_for(self, host: str, port: int | None) -> str | None:
        hosts = self._hosts
        if port is not None:
            provider = hosts.get(f"{host}:{port}")
            if provider is not None:
                return provider
        provider = hosts.get(host)
        if provider is not None:
            return provider
        for suffix, provider in PROVIDER_HOST_SUFFIXES:
            if host.endswith(suffix):
                return provider
        return None


def parse_provider_hosts(value: str) -> dict[str, str]:
    """Parse `host[:port]=provider,...`; a malformed entry is an error that names it."""
    hosts: dict[str, str] = {}
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        host, sep, provider = entry.partition("=")
        host, provider = host.strip().lower(), provider.strip()
        if not sep or not host or not provider:
            raise ValueError(f"{PROVIDER_HOSTS_ENV}: expected host[:port]=provider, got {entry!r}")
        hosts[host] = provider
    return hosts
