"""Which requests are LLM calls, and whose: the host and path tables."""

from __future__ import annotations

import pytest

from spendwatch.instrumentation.families.registry import Classifier, parse_provider_hosts

CLASSIFIER = Classifier({"gateway.internal": "openrouter", "localhost:8000": "vllm"})


@pytest.mark.parametrize(
    "host,port,path,provider,operation,known",
    [
        ("api.openai.com", None, "/v1/chat/completions", "openai", "chat", True),
        ("api.openai.com", None, "/v1/responses", "openai", "responses", True),
        ("api.openai.com", None, "/v1/embeddings", "openai", "embeddings", True),
        ("api.openai.com", None, "/v1/completions", "openai", "text_completion", True),
        ("api.anthropic.com", None, "/v1/messages", "anthropic", "chat", True),
        (
            "generativelanguage.googleapis.com",
            None,
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "gcp.gemini",
            "generate_content",
            True,
        ),
        (
            "generativelanguage.googleapis.com",
            None,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            "gcp.gemini",
            "generate_content",
            True,
        ),
        (
            "generativelanguage.googleapis.com",
            None,
            "/v1beta/models/text-embedding-004:batchEmbedContents",
            "gcp.gemini",
            "embeddings",
            True,
        ),
        (
            "us-central1-aiplatform.googleapis.com",
            None,
            "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent",
            "gcp.vertex_ai",
            "generate_content",
            True,
        ),
        ("myco.openai.azure.com", None, "/openai/deployments/gpt4o/chat/completions", "azure.ai.openai", "chat", True),
        ("myco.cognitiveservices.azure.com", None, "/openai/v1/chat/completions", "azure.ai.openai", "chat", True),
        ("api.groq.com", None, "/openai/v1/chat/completions", "groq", "chat", True),
        ("api.mistral.ai", None, "/v1/chat/completions", "mistral_ai", "chat", True),
        ("api.deepseek.com", None, "/chat/completions", "deepseek", "chat", True),
        ("api.x.ai", None, "/v1/chat/completions", "x_ai", "chat", True),
        ("api.perplexity.ai", None, "/chat/completions", "perplexity", "chat", True),
        ("openrouter.ai", None, "/api/v1/chat/completions", "openrouter", "chat", True),
        ("api.together.xyz", None, "/v1/chat/completions", "together_ai", "chat", True),
        ("api.fireworks.ai", None, "/inference/v1/chat/completions", "fireworks_ai", "chat", True),
        ("localhost", 11434, "/api/chat", "ollama", "chat", True),
        ("localhost", 11434, "/v1/chat/completions", "ollama", "chat", True),
        ("gateway.internal", None, "/v1/messages", "openrouter", "chat", True),
        ("localhost", 8000, "/v1/chat/completions", "vllm", "chat", True),
        ("api.openai.com", None, "/v1/images/generations", "openai", "image_generation", True),
        ("api.openai.com", None, "/v1/images/edits", "openai", "image_generation", True),
        ("api.openai.com", None, "/v1/audio/speech", "openai", "speech", True),
        ("api.openai.com", None, "/v1/audio/transcriptions", "openai", "transcription", True),
        ("api.openai.com", None, "/v1/audio/translations", "openai", "translation", True),
        ("api.openai.com", None, "/v1/moderations", "openai", "moderation", True),
        (
            "bedrock-runtime.us-east-1.amazonaws.com",
            None,
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
            "aws.bedrock",
            "chat",
            True,
        ),
        ("bedrock-runtime.eu-west-1.amazonaws.com", None, "/model/m/converse-stream", "aws.bedrock", "chat", True),
        ("bedrock-runtime.eu-west-1.amazonaws.com", None, "/model/m/invoke", "aws.bedrock", "chat", True),
        (
            "bedrock-runtime.eu-west-1.amazonaws.com",
            None,
            "/model/m/invoke-with-response-stream",
            "aws.bedrock",
            "chat",
            True,
        ),
        ("vpce-1.bedrock-runtime.vpce.example", None, "/model/m/converse", "aws.bedrock", "chat", False),
        (
            "europe-west4-aiplatform.googleapis.com",
            None,
            "/v1/projects/p/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
            "gcp.vertex_ai",
            "chat",
            True,
        ),
        (
            "private.example",
            None,
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5:streamRawPredict",
            "gcp.vertex_ai",
            "chat",
            False,
        ),
        (
            "private.example",
            None,
            "/v1beta1/projects/p/locations/us/publishers/google/models/gemini-2.5-flash:generateContent",
            "gcp.vertex_ai",
            "generate_content",
            False,
        ),
        ("llm.example.net", None, "/v1/chat/completions", "openai", "chat", False),
        ("llm.example.net", None, "/v1/messages", "anthropic", "chat", False),
        ("llm.example.net", None, "/api/generate", "ollama", "text_completion", False),
    ],
)
def test_classify(host, port, path, provider, operation, known):
    match = CLASSIFIER.classify("POST", host, port, path)
    assert (match.provider, match.route.operation, match.known_host) == (provider, operation, known)


@pytest.mark.parametrize(
    "method,host,path",
    [
        ("GET", "api.openai.com", "/v1/chat/completions"),
        ("POST", "api.openai.com", "/v1/files"),
        ("POST", "api.anthropic.com", "/v1/messages/count_tokens"),
        ("POST", "api.anthropic.com", "/v1/messages/batches"),
        ("POST", "example.com", "/login"),
        ("POST", "api.openai.com", "/v1/files"),
        ("POST", "api.openai.com", "/v1/uploads"),
        ("POST", "api.openai.com", "/v1/uploads/upload_1/parts"),
        ("POST", "api.openai.com", "/v1/batches"),
        ("POST", "api.openai.com", "/v1/responses/resp_1/cancel"),
        ("POST", "api.openai.com", "/v1/responses/input_tokens"),
        ("POST", "example.com", "/2015-03-31/functions/f/invoke"),  # an /invoke that names no /model/
        ("GET", "bedrock-runtime.us-east-1.amazonaws.com", "/model/m/converse"),
    ],
)
def test_not_llm_calls(method, host, path):
    assert CLASSIFIER.classify(method, host, None, path) is None


def test_provider_hosts_variable():
    assert parse_provider_hosts(" a.example=openai, localhost:9000=vllm ,") == {
        "a.example": "openai",
        "localhost:9000": "vllm",
    }
    with pytest.raises(ValueError, match="SPENDWATCH_PROVIDER_HOSTS: expected host\\[:port\\]=provider, got 'oops'"):
        parse_provider_hosts("oops")


def test_every_route_belongs_to_one_registered_family():
    """Adding a provider is a module in families/ and a line in the registry: nothing else names it."""
    import pkgutil

    from spendwatch.instrumentation import families
    from spendwatch.instrumentation.families import registry

    modules = {name for _, name, _ in pkgutil.iter_modules(families.__path__)} - {"registry"}
    registered = {family.name for family in registry.FAMILIES}
    assert len(registered) == len(modules) == len(registry.FAMILIES)
    for name in modules:
        module = __import__(f"spendwatch.instrumentation.families.{name}", fromlist=["FAMILY"])
        assert module.FAMILY in registry.FAMILIES
    assert all(route.path_suffix.startswith(("/", ":")) for route in registry.ROUTES)
