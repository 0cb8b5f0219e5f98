// Sends GenAI spans (and some that are not) to a collector with one of OpenTelemetry's Node.js trace
// exporters, as a Node service would: a BatchSpanProcessor, batches spread over time on kept connections.
// Usage: node export_spans.js proto|http|grpc URL TAG GENAI_SPANS OTHER_SPANS
// Prints one JSON line: how many spans each export result reported as exported, and any failures.
"use strict";

const { SpanKind } = require("@opentelemetry/api");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { BasicTracerProvider, BatchSpanProcessor } = require("@opentelemetry/sdk-trace-base");
const { ExportResultCode } = require("@opentelemetry/core");

const [kind, url, tag, genaiCount, otherCount] = process.argv.slice(2);
const { OTLPTraceExporter } = require(`@opentelemetry/exporter-trace-otlp-${kind}`);

const exporter = new OTLPTraceExporter({ url, timeoutMillis: 10000 });
const outcome = { exported: 0, failed: 0, errors: [] };
const counting = {
  export(spans, done) {
    exporter.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        outcome.exported += spans.length;
      } else {
        outcome.failed += spans.length;
        outcome.errors.push(String(result.error && result.error.message));
      }
      done(result);
    });
  },
  shutdown: () => exporter.shutdown(),
  forceFlush: () => exporter.forceFlush(),
};
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": `node-${kind}` }),
  spanProcessors: [new BatchSpanProcessor(counting, { maxExportBatchSize: 40, scheduledDelayMillis: 50 })],
});
const tracer = provider.getTracer("node-exporter-test");
const models = ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"];
const providers = ["openai", "anthropic", "gcp.gemini"];

async function main() {
  const genai = Number(genaiCount);
  const other = Number(otherCount);
  for (let index = 0; index < genai + other; index++) {
    if (index % 25 === 0) {
      await provider.forceFlush();
      // Idle between bursts, as a service is between requests: the next export reuses a kept connection.
      await new Promise((resolve) => setTimeout(resolve, index % 100 === 0 ? 1200 : 30));
    }
    if (index < genai) {
      const which = index % models.length;
      const span = tracer.startSpan(`chat ${models[which]}`, {
        kind: SpanKind.CLIENT,
        attributes: {
          "gen_ai.provider.name": providers[which],
          "gen_ai.operation.name": "chat",
          "gen_ai.request.model": `${tag}-${index}`,
          "gen_ai.response.model": models[which],
          "gen_ai.usage.input_tokens": 100 + index,
          "gen_ai.usage.output_tokens": 10 + index,
          "gen_ai.response.finish_reasons": ["stop"],
        },
      });
      span.end();
    } else {
      const span = tracer.startSpan("GET /orders", {
        kind: SpanKind.SERVER,
        attributes: { "http.request.method": "GET", "http.route": "/orders", "http.response.status_code": 200 },
      });
      span.end();
    }
  }
  await provider.forceFlush();
  await provider.shutdown();
  process.stdout.write(JSON.stringify(outcome) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack) + "\n");
  process.exit(1);
});
