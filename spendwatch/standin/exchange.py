"""What a stand-in request and its answer are, for every module that builds answers (wire, bedrock, media)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

DEFAULT_REPLY = "Hello from the stand-in provider."


@dataclass(frozen=True)
class Usage:
    """A call's usage in semconv terms: input includes cache reads and writes, output includes reasoning.

    The parts priced apart are parts of those: `cache_write_1h` of the cache writes (the rest are 5-minute
    writes), audio and image tokens of the input and the output, `cache_audio` of the cache reads.
    """

    input: int = 25
    output: int = 0  # 0: one token per streamed chunk of the reply
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cache_write_1h: int = 0
    input_audio: int = 0
    input_image: int = 0
    output_audio: int = 0
    output_image: int = 0
    cache_audio: int = 0

    @classmethod
    def from_header(cls, value: str | None, default_output: int) -> Usage:
        fields: dict[str, int] = {}
        for item in (value or "").split(","):
            name, _, number = item.partition("=")
            if name.strip():
                fields[name.strip()] = int(number)
        fields.setdefault("output", default_output)
        return cls(**fields)

    def header(self) -> str:
        return ",".join(f"{name}={getattr(self, name)}" for name in self.__dataclass_fields__)


@dataclass
class Exchange:
    """One request as the wire builders see it."""

    path: str
    query: dict[str, list[str]]
    body: dict[str, Any]
    headers: Any
    serial: int

    @property
    def reply(self) -> str:
        return self.headers.get("x-standin-reply") or DEFAULT_REPLY

    @property
    def chunks(self) -> list[str]:
        count = int(self.headers.get("x-standin-chunks") or 0)
        words = self.reply.split(" ")
        pieces = [word if index == 0 else " " + word for index, word in enumerate(words)]
        if count:
            pieces = [pieces[index % len(pieces)] for index in range(count)]
        return pieces

    @property
    def usage(self) -> Usage:
        return Usage.from_header(self.headers.get("x-standin-usage"), default_output=len(self.chunks))

    @property
    def model(self) -> str:
        in_path = self.path.rsplit("/models/", 1)[-1].split(":", 1)[0] if "/models/" in self.path else None
        return self.body.get("model") or model_of(self.path) or in_path or "standin-model"

    @property
    def service_tier(self) -> str | None:
        """`x-standin-service-tier`: the tier the answer says served it (OpenAI's, Anthropic's, Gemini's)."""
        return self.headers.get("x-standin-service-tier")

    @property
    def response_model(self) -> str:
        return self.headers.get("x-standin-response-model") or self.model


def model_of(path: str) -> str | None:
    """The model a Bedrock path names (`/model/{id}/converse`), cross-region profiles included."""
    if "/model/" not in path:
        return None
    return unquote(path.split("/model/", 1)[1].split("/", 1)[0])


@dataclass
class Answer:
    body: Any = None  # JSON, or bytes sent as they are (audio)
    events: list[bytes] | None = None  # a stream: each element is written (and flushed) as one chunk
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Billed:
    """A request the stand-in answered as a provider would bill it: what the tests compare rows with."""

    serial: int
    path: str
    response_id: str | None
    model: str
    usage: Usage
    key: str | None
    at: float = field(default_factory=time.time)  # epoch seconds: the admin APIs' time buckets
    served_model: str | None = None  # the model that answered, as the provider's usage reports name it
    project: str | None = None  # OpenAI's `OpenAI-Project` header; `x-standin-workspace` for Anthropic
