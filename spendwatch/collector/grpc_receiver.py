"""OTLP/gRPC: the trace, metrics and logs services, answering as the OpenTelemetry Collector does."""

from __future__ import annotations

import hmac
import logging
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from spendwatch.collector import otlp
from spendwatch.collector.http_receiver import MAX_EXPORTS_IN_FLIGHT
from spendwatch.collector.ingest import Ingest
from spendwatch.collector.writer import Overloaded

logger = logging.getLogger("spendwatch.collector")


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            outcome = self._ingest.export_traces(request)
        except Overloaded:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the writer is behind; retry")
        except Exception as error:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"could not store the export ({type(error).__name__}); retry")
        response = trace_service_pb2.ExportTraceServiceResponse()
        if outcome.rejected:  # some spans refused, the rest stored: OTLP's partial success, not an error
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.message
        return response


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._ingest.export_other(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._ingest.export_other(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class _IngestToken(grpc.ServerInterceptor):
    """Every call must carry `authorization: Bearer <token>` in its metadata."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong ingest token")

        self._refusal = grpc.unary_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation, handler_call_details):
        supplied = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(str(supplied).encode(), self._expected):
            return continuation(handler_call_details)
        return self._refusal


class GrpcReceiver:
    def __init__(
        self,
        host: str,
        port: int,
        ingest: Ingest,
        max_body_bytes: int = otlp.DEFAULT_MAX_BODY_BYTES,
        ingest_token: str | None = None,
    ):
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="spendwatch-otlp-grpc"),
            # No SO_REUSEPORT: a second daemon on the same port must fail, not silently share the exports.
            options=[("grpc.max_receive_message_length", max_body_bytes), ("grpc.so_reuseport", 0)],
            interceptors=[_IngestToken(ingest_token)] if ingest_token else [],
            maximum_concurrent_rpcs=MAX_EXPORTS_IN_FLIGHT,  # beyond: RESOURCE_EXHAUSTED, which exporters retry
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(ingest), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(ingest), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(ingest), self._server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as error:  # newer grpcio raises where older ones returned 0
            raise OSError(f"cannot listen for OTLP/gRPC on {address}: {error}") from None
        if self.port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}: the port is in use")

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_seconds: float = 5) -> None:
        self._server.stop(grace_seconds).wait()
