// An app on the openai Node SDK under OpenTelemetry's own openai instrumentation, exporting OTLP/HTTP
// protobuf: the peer test (tests/peers/test_node_openai.py) compares what spendwatch stored with what the
// stand-in billed. Environment: STANDIN, ENDPOINT, KEY_A, KEY_B, RUN, PROMPT, COMPLETION.
const { NodeTracerProvider } = require("@opentelemetry/sdk-trace-node");
const { BatchSpanProcessor } = require("@opentelemetry/sdk-trace-base");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { registerInstrumentations } = require("@opentelemetry/instrumentation");
const { OpenAIInstrumentation } = require("@opentelemetry/instrumentation-openai");
const { trace } = require("@opentelemetry/api");

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "node-app" }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: process.env.ENDPOINT + "/v1/traces" }))],
});
provider.register();
registerInstrumentations({ instrumentations: [new OpenAIInstrumentation()] });
const { OpenAI } = require("openai"); // after the instrumentation, which patches it on load

const env = process.env;
const messages = [{ role: "user", content: env.PROMPT }];
const usage = (n) => ({ "x-standin-reply": env.COMPLETION + " and more", "x-standin-usage": `input=${n},output=7` });

async function main() {
  const teamA = new OpenAI({ baseURL: env.STANDIN + "/v1", apiKey: env.KEY_A, maxRetries: 0 });
  const teamB = new OpenAI({ baseURL: env.STANDIN + "/v1", apiKey: env.KEY_B, maxRetries: 1 });
  const tracer = trace.getTracer("app");
  await tracer.startActiveSpan("handle request", async (span) => {
    await teamA.chat.completions.create({ model: "gpt-4o-mini", messages }, { headers: usage(201) });
    const stream = await teamB.chat.completions.create(
      { model: "gpt-4o", messages, stream: true, stream_options: { include_usage: true } },
      { headers: usage(202) },
    );
    for await (const _ of stream) {
    }
    // the first attempt fails, the SDK's retry is billed
    await teamB.chat.completions.create(
      { model: "gpt-4o-mini", messages },
      { headers: { ...usage(203), "x-standin-fail-first": `retry-${env.RUN}=1` } },
    );
    // two calls at once in one trace
    await Promise.all([204, 205].map((n) => teamA.chat.completions.create({ model: "gpt-4o-mini", messages }, { headers: usage(n) })));
    span.end();
  });
  await provider.shutdown();
  console.log("app done");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
