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
