"""Azure OpenAI: OpenAI's wire on hosts that name the customer's resource.

The deployment name stands in the path where the model would be in the body
(`/openai/deployments/{deployment}/chat/completions`); the openai family reads it as the request model,
and the model comes from the response.
"""

from spendwatch.instrumentation.families import Family

PROVIDER = "azure.ai.openai"

FAMILY = Family(
    "azure",
    host_suffixes=(
        (".openai.azure.com", PROVIDER),
        (".cognitiveservices.azure.com", PROVIDER),
        (".services.ai.azure.com", PROVIDER),
    ),
)
