"""Providers that speak OpenAI's wire (or Anthropic's) on their own hosts: only their hosts are theirs.

Their paths are the openai family's routes; what makes a call theirs is the host. Groq's older streams
put usage under `x_groq.usage`, which the openai family reads.
"""

from spendwatch.instrumentation.families import Family

FAMILY = Family(
    "openai-compatible",
    hosts={
        "api.groq.com": "groq",
        "api.mistral.ai": "mistral_ai",
        "api.deepseek.com": "deepseek",
        "api.x.ai": "x_ai",
        "api.perplexity.ai": "perplexity",
        "openrouter.ai": "openrouter",
        "api.together.xyz": "together_ai",
        "api.together.ai": "together_ai",
        "api.fireworks.ai": "fireworks_ai",
    },
)
