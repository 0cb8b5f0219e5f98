"""A stand-in LLM provider: a real HTTP server on 127.0.0.1 that speaks the providers' wire formats.

The demo drives its sample app against it and the tests drive the real SDKs against it, offline. It
answers OpenAI (chat completions, Responses, embeddings, legacy completions; Azure deployment paths; Groq's
`x_groq` usage), Anthropic Messages, Gemini (generateContent, streamGenerateContent as SSE or a JSON
array, embeddings; Claude on Vertex AI's rawPredict), Ollama's native API, Amazon Bedrock (`bedrock`:
Converse, InvokeModel and their streams in AWS event-stream framing) and OpenAI's images, audio and
moderations (`media`), streaming and not, compressed like the real ones.

A request steers its answer with headers (never recorded by the instrumentation):
- `x-standin-usage: input=100,output=20,cache_read=30,cache_write=10,reasoning=5` — the call's usage in
  semconv terms (input includes the cache, output includes reasoning); each format reports it in its own
  terms (Anthropic's `input_tokens` without the cache, Gemini's candidates without thoughts).
- `x-standin-status: 429` — answer with that error status (and a body that quotes the prompt, as real
  providers' error bodies do); `x-standin-reply: text` — the completion text; `x-standin-chunks: N` — how
  many stream chunks; `x-standin-groq: 1` — usage under `x_groq`; `x-standin-response-model: name`;
  `x-standin-fail-first: ID=N` — the first N requests carrying ID fail with 500 (or `x-standin-status`),
  so that an SDK's retry succeeds.
- `x-standin-web-search: N` — N web searches (Responses' `web_search_call`s, Anthropic's
  `server_tool_use`, Gemini's grounding queries); `x-standin-web-fetch: N` — Anthropic's web fetches;
  `media` names its own (image and audio tokens, audio seconds).

`StandinServer.billed` lists every request answered as billable (its response id, model, usage, the
key that paid and when): the ledger the tests compare stored calls with. Its admin APIs (`admin.py`:
OpenAI's organization Usage and Costs APIs, Anthropic's usage and cost reports, both providers' key lists)
report that same ledger as the providers report their bills, with `StandinServer.usage` for what the
stand-in does not serve, behind `StandinServer.admin.keys`; `fail_admin` makes its next answers fail.
"""

from spendwatch.standin.exchange import Usage
from spendwatch.standin.server import Billed, StandinServer

__all__ = ["Billed", "StandinServer", "Usage"]
