"""boto3's `bedrock-runtime` (botocore over urllib3, SigV4) against the stand-in's Bedrock answers, AWS
event-stream framing and CRCs included: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream."""

from __future__ import annotations

import json
import secrets

import boto3
import pytest

from spendwatch.instrumentation.keys import api_key_id
from spendwatch.standin import Usage
from tests.conftest import only_span, ours

PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"  # a cross-region inference profile
USAGE = Usage(input=1000, output=50, cache_read=600, cache_write=100)  # Bedrock reports 300 as inputTokens
PROMPT = "PROMPT-CANARY-" + secrets.token_hex(6)
COMPLETION = "COMPLETION-CANARY-" + secrets.token_hex(6)
MESSAGES = [{"role": "user", "content": [{"text": PROMPT}]}]
ANTHROPIC_BODY = json.dumps(
    {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": PROMPT}]}
)


@pytest.fixture
def credentials():
    access_key_id = "AKIA" + secrets.token_hex(8).upper()
    return access_key_id, "secret-" + secrets.token_urlsafe(30)


def bedrock(standin, credentials, usage: Usage = USAGE, **extra_headers: str):
    access_key_id, secret = credentials
    client = boto3.client(
        "bedrock-runtime",
        region_name="eu-west-1",
        endpoint_url=standin.base_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
    )
    steer = {"x-standin-usage": usage.header(), "x-standin-reply": f"{COMPLETION} and more", **extra_headers}

    def add_headers(request, **kwargs):
        request.headers.update(steer)

    client.meta.events.register("before-send.bedrock-runtime.*", add_headers)
    return client


def check(span, credentials, *, stream: bool, model: str = PROFILE, usage: Usage = USAGE):
    access_key_id, secret = credentials
    attributes = dict(span.attributes)
    assert span.name == f"{attributes['gen_ai.operation.name']} {model}"
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["gen_ai.request.model"] == model
    assert attributes["gen_ai.request.stream"] is stream
    assert attributes["gen_ai.usage.input_tokens"] == usage.input  # cache reads and writes included
    assert attributes["gen_ai.usage.output_tokens"] == usage.output
    assert attributes.get("gen_ai.usage.cache_read.input_tokens") == (usage.cache_read or None)
    assert attributes.get("gen_ai.usage.cache_creation.input_tokens") == (usage.cache_write or None)
    assert attributes["spendwatch.usage.estimated"] is False
    assert "gen_ai.response.model" not in attributes  # Anthropic's name in the body is not what Bedrock bills
    assert attributes["cloud.region"] == "eu-west-1"
    assert attributes["spendwatch.fingerprint.id"] == api_key_id(access_key_id)  # the access key id, not the secret
    assert attributes["spendwatch.fingerprint.hint"] == access_key_id[-4:]
    for value in attributes.values():
        for canary in (PROMPT, COMPLETION, secret, access_key_id):
            assert canary not in str(value)
    return attributes


def test_converse(spans, standin, credentials):
    answer = bedrock(standin, credentials).converse(modelId=PROFILE, messages=MESSAGES)
    assert answer["usage"]["inputTokens"] == 300
    assert answer["output"]["message"]["content"][0]["text"].startswith(COMPLETION)
    attributes = check(only_span(spans), credentials, stream=False)
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert standin.requests[-1].path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"


def test_converse_stream(spans, standin, credentials):
    answer = bedrock(standin, credentials).converse_stream(modelId=PROFILE, messages=MESSAGES)
    events = list(answer["stream"])  # botocore checks every message's CRCs as it parses them
    assert next(iter(events[-1])) == "metadata" and events[-1]["metadata"]["usage"]["outputTokens"] == 50
    check(only_span(spans), credentials, stream=True)


def test_invoke_model(spans, standin, credentials):
    answer = bedrock(standin, credentials).invoke_model(modelId=PROFILE, body=ANTHROPIC_BODY)
    body = json.loads(answer["body"].read())
    assert body["usage"]["cache_read_input_tokens"] == 600
    assert body["model"] == "claude-sonnet-4-5-20250929"
    attributes = check(only_span(spans), credentials, stream=False)
    assert attributes["gen_ai.response.id"].startswith("msg_standin")


def test_invoke_model_with_response_stream(spans, standin, credentials):
    answer = bedrock(standin, credentials).invoke_model_with_response_stream(modelId=PROFILE, body=ANTHROPIC_BODY)
    chunks = [json.loads(event["chunk"]["bytes"]) for event in answer["body"]]
    assert "amazon-bedrock-invocationMetrics" in chunks[-1]
    check(only_span(spans), credentials, stream=True)


@pytest.mark.parametrize(
    "model,operation",
    [("meta.llama3-3-70b-instruct-v1:0", "chat"), ("amazon.titan-embed-text-v2:0", "embeddings")],
)
def test_invoke_model_of_other_families(spans, standin, credentials, model, operation):
    usage = Usage(input=40, output=0 if operation == "embeddings" else 9)
    body = json.dumps({"inputText": PROMPT} if operation == "embeddings" else {"prompt": PROMPT, "max_gen_len": 9})
    bedrock(standin, credentials, usage).invoke_model(modelId=model, body=body)["body"].read()
    attributes = check(only_span(spans), credentials, stream=False, model=model, usage=usage)
    assert attributes["gen_ai.operation.name"] == operation


def test_each_request_is_one_span(spans, standin, credentials):
    client = bedrock(standin, credentials)
    for _ in range(3):
        client.converse(modelId=PROFILE, messages=MESSAGES)
    assert len(ours(spans)) == 3  # botocore over urllib3: one span per request, not one per layer
