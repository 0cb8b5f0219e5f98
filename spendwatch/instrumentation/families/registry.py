"""The one table of provider families, and the classifier that consults it.

The path decides the route (and so how the call is read), the host decides the provider, so an
OpenAI-compatible gateway on a custom host is still read as OpenAI's format. On a host no family names
(and `SPENDWATCH_PROVIDER_HOSTS` does not name either), a recognised path still counts, under the
route's own provider name (`openai`, `anthropic`, `gcp.gemini`, `aws.bedrock`, ...).

`may_be_llm_call` runs on every HTTP request the app makes, so it is built for the miss: a method
comparison and one `str.endswith` with a tuple, both in C, before anything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from spendwatch.instrumentation.families import (
    Family,
    Route,
    anthropic,
    azure,
    bedrock,
    compatible,
    gemini,
    ollama,
    openai,
    vertex,
)

# Order matters where suffixes overlap: the first route whose suffix (and `path_contains`) fits wins,
# so Ollama's "/api/embeddings" comes before OpenAI's "/embeddings", "/chat/completions" before
# "/completions", Vertex's paths before Gemini's. Past that, the most called first: it is walked per call.
FAMILIES: tuple[Family, ...] = (
    ollama.FAMILY,
    openai.FAMILY,
    anthropic.FAMILY,
    vertex.FAMILY,
    gemini.FAMILY,
    bedrock.FAMILY,
    azure.FAMILY,
    compatible.FAMILY,
)

ROUTES: tuple[Route, ...] = tuple(route for family in FAMILIES for route in family.routes)
_ROUTE_SUFFIXES = tuple({route.path_suffix: None for route in ROUTES})
PROVIDER_HOSTS: dict[str, str] = {host: name for family in FAMILIES for host, name in family.hosts.items()}
PROVIDER_HOST_SUFFIXES = tuple(entry for family in FAMILIES for entry in family.host_suffixes)
PROVIDER_HOST_PREFIXES = tuple(entry for family in FAMILIES for entry in family.host_prefixes)

PROVIDER_HOSTS_ENV = "SPENDWATCH_PROVIDER_HOSTS"


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    provider: str
    known_host: bool  # False: recognised by its path alone, so its response must prove it is an LLM call


def may_be_llm_call(method: str, path: str) -> bool:
    """The cheap first look every request of the app gets: model calls are POSTs to known paths."""
    return method == "POST" and path.endswith(_ROUTE_SUFFIXES)


class Classifier:
    """Decides, per request, whether it is an LLM API call (and which)."""

    may_be_llm_call = staticmethod(may_be_llm_call)

    def __init__(self, extra_hosts: dict[str, str] | None = None) -> None:
        self._hosts = {**PROVIDER_HOSTS, **(extra_hosts or {})}

    @classmethod
    def from_env(cls) -> Classifier:
        return cls(parse_provider_hosts(os.environ.get(PROVIDER_HOSTS_ENV, "")))

    def classify(self, method: str, host: str, port: int | None, path: str) -> Match | None:
        if not may_be_llm_call(method, path):
            return None
        for route in ROUTES:
            if path.endswith(route.path_suffix) and (not route.path_contains or route.path_contains in path):
                break
        else:
            return None
        provider = self.provider_for(host, port)
        if provider is None:
            return Match(route, route.provider, known_host=False)
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
        for prefix, provider in PROVIDER_HOST_PREFIXES:
            if host.startswith(prefix):
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
