"""Provider names as stored, and which names can describe the same call.

Instrumentations spell providers their own way: `gen_ai.system` values (`gemini`, `az.ai.openai`), the
Vercel AI SDK's `openai.chat` / `anthropic.messages` / `google.generative-ai`, `amazon-bedrock`. The stored
`provider` is the semantic conventions' well-known value whatever the spelling, so a rule written for
`provider = "openai"` sees every OpenAI call; the spelling received is kept in `provider_raw`.

Two spans of one call need not name the same provider: OpenLLMetry's openai instrumentor says `openai` for
any base URL, where spendwatch's span (which sees the host) says `groq`; the anthropic SDK on Bedrock says
`anthropic` where the HTTP span says `aws.bedrock`. `compatible` says which pairs can be one call.
And genai-prices, which prices the calls, names providers its own way (`GENAI_PRICES_PROVIDER`). The
instrumentation's knowledge of providers (hosts, paths, wire formats) is its own: instrumentation/families.
"""

from __future__ import annotations

WELL_KNOWN = frozenset(
    {
        "anthropic",
        "aws.bedrock",
        "azure.ai.inference",
        "azure.ai.openai",
        "cohere",
        "deepseek",
        "gcp.gemini",
        "gcp.gen_ai",
        "gcp.vertex_ai",
        "groq",
        "ibm.watsonx.ai",
        "mistral_ai",
        "openai",
        "perplexity",
        "x_ai",
        "openrouter",
        "together_ai",
        "fireworks_ai",
        "ollama",
    }
)
ALIASES = {
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "google.generative-ai": "gcp.gemini",
    "google.generative_ai": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "google.vertex": "gcp.vertex_ai",
    "google-vertex": "gcp.vertex_ai",
    "az.ai.openai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "azure.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "together": "together_ai",
    "togetherai": "together_ai",
    "fireworks": "fireworks_ai",
    "watsonx": "ibm.watsonx.ai",
}
# The first part of an SDK-specific name (`openai.responses`, `mistral.chat`) to the provider.
_ROOTS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "together": "together_ai",
    "togetherai": "together_ai",
    "fireworks": "fireworks_ai",
    "openrouter": "openrouter",
    "ollama": "ollama",
}


def normalize(raw: str) -> str:
    """The stored provider name for what an instrumentation sent."""
    name = raw.strip().lower()
    if name in WELL_KNOWN:
        return name
    alias = ALIASES.get(name)
    if alias is not None:
        return alias
    for separator in (".", "-", "_", "/", ":"):
        root = name.split(separator, 1)[0]
        if root != name and root in _ROOTS:
            return _ROOTS[root]
    return name


# Providers whose API has the OpenAI wire format: an OpenAI SDK pointed at them is reported as `openai`
# by instrumentations that read the SDK, not the host.
OPENAI_COMPATIBLE = frozenset(
    {
        "openai",
        "azure.ai.openai",
        "azure.ai.inference",
        "groq",
        "mistral_ai",
        "deepseek",
        "x_ai",
        "perplexity",
        "openrouter",
        "together_ai",
        "fireworks_ai",
        "ollama",
        "gcp.gemini",  # Gemini's OpenAI-compatible endpoint
    }
)
# Where a model family is served by a cloud: the SDK's span names the family, the HTTP span the cloud.
_HOSTED = {
    "aws.bedrock": frozenset({"anthropic", "cohere", "mistral_ai", "meta", "amazon", "deepseek", "openai"}),
    "gcp.vertex_ai": frozenset({"anthropic", "gcp.gemini", "gcp.gen_ai", "mistral_ai", "meta"}),
    "gcp.gen_ai": frozenset({"gcp.gemini", "gcp.vertex_ai"}),
    "azure.ai.inference": frozenset({"azure.ai.openai", "mistral_ai", "meta", "cohere", "deepseek"}),
}


def compatible(first: str, second: str) -> bool:
    """Whether spans naming these providers can describe one call."""
    if first == second:
        return True
    if "openai" in (first, second):
        other = second if first == "openai" else first
        return other in OPENAI_COMPATIBLE or other not in WELL_KNOWN  # a self-hosted OpenAI-style server
    return first in _HOSTED.get(second, ()) or second in _HOSTED.get(first, ())


# The semconv names to genai-prices' provider ids, which price the calls.
GENAI_PRICES_PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "azure.ai.openai": "azure",
    "aws.bedrock": "aws",
    "groq": "groq",
    "mistral_ai": "mistral",
    "deepseek": "deepseek",
    "x_ai": "x-ai",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "cohere": "cohere",
}
