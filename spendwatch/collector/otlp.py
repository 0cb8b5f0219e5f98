"""Decoding OTLP export requests (protobuf or JSON) and encoding the answers, failures included.

OTLP/JSON carries trace and span ids as hex strings, where protobuf's JSON mapping expects base64 for
`bytes` fields: the ids are converted before `ParseDict`, which would otherwise decode hex as base64 and
store wrong ids. JSON is the rare path (browsers, curl); protobuf goes straight to the upb decoder.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_REASON_CHARS = 300
# The protobuf decoder refuses messages nested deeper than 100; OTLP/JSON gets the same bound (each
# message level is about two JSON levels), rather than whatever Python's recursion limit allows.
MAX_JSON_DEPTH = 200

PROTOBUF, JSON = "application/x-protobuf", "application/json"
# google.rpc.Code values for Status bodies (OTLP clients do not act on them; they help a person reading one).
INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, UNAUTHENTICATED, UNAVAILABLE = 3, 5, 8, 16, 14

SIGNALS: dict[str, tuple[type, type]] = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}


class BadRequest(Exception):
    """The body cannot be read: answered 4xx with this message, and nothing else happens."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message[:MAX_REASON_CHARS])
        self.status = status


def decode(message_type: type, body: bytes, content_type: str | None) -> tuple[Any, bool]:
    """The request message, and whether it came as JSON (so the answer goes back as JSON)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type == PROTOBUF:
        message = message_type()
        try:
            message.ParseFromString(body)
        except DecodeError as error:
            raise BadRequest(400, f"body is not a valid OTLP protobuf message: {error}") from None
        return message, False
    if media_type == JSON:
        try:
            document = json.loads(body)
        except RecursionError:
            raise BadRequest(400, "body is JSON nested deeper than OTLP allows") from None
        except ValueError as error:  # also invalid UTF-8
            raise BadRequest(400, f"body is not valid JSON: {error}") from None
        if not isinstance(document, dict):
            raise BadRequest(400, "body is not an OTLP JSON object")
        if _depth_exceeds(document, MAX_JSON_DEPTH):
            raise BadRequest(400, f"body is JSON nested deeper than {MAX_JSON_DEPTH} levels")
        message = message_type()
        try:
            _hex_ids_to_base64(document)
            json_format.ParseDict(document, message, ignore_unknown_fields=True)
        except RecursionError:
            raise BadRequest(400, "body is nested deeper than OTLP allows") from None
        except (json_format.ParseError, ValueError, TypeError, AttributeError) as error:
            raise BadRequest(400, f"body is not a valid OTLP JSON message: {error}") from None
        return message, True
    raise BadRequest(415, f"unsupported content-type {media_type!r}: use application/x-protobuf or application/json")


def otlp_media_type(content_type: str | None) -> str | None:
    """`application/x-protobuf` or `application/json` when the request is one of them, else None."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media if media in (PROTOBUF, JSON) else None


def encode_status(code: int, text: str, media: str | None) -> tuple[bytes, str]:
    """A failure's body as OTLP/HTTP asks: a `google.rpc.Status`, in the request's encoding (JSON when the
    request's own content type is not OTLP's)."""
    if media == PROTOBUF:
        return status_pb2.Status(code=code, message=text).SerializeToString(), PROTOBUF
    return json.dumps({"code": code, "message": text}).encode(), JSON


def encode(message: Any, as_json: bool) -> tuple[bytes, str]:
    if as_json:
        return json.dumps(json_format.MessageToDict(message)).encode(), "application/json"
    return message.SerializeToString(), "application/x-protobuf"


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether JSON objects and arrays nest deeper than `limit`, found without recursion."""
    level = [document]
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    for resource_spans in document.get("resourceSpans") or ():
        for scope_spans in (resource_spans or {}).get("scopeSpans") or ():
            for span in (scope_spans or {}).get("spans") or ():
                if isinstance(span, dict):
                    _convert_ids(span)
                    for link in span.get("links") or ():
                        if isinstance(link, dict):
                            _convert_ids(link)


def _convert_ids(item: dict[str, Any]) -> None:
    for field in _ID_FIELDS:
        value = item.get(field)
        if isinstance(value, str) and value:
            try:
                item[field] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise BadRequest(400, f"{field} {value[:64]!r} is not hex") from None
