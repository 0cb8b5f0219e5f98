"""Secrets never reach the database: every string stored passes through here, typed columns included.

Three things give a secret away. Its shape: providers' keys carry prefixes (`sk-`, `pplx-`, `hf_`, `AKIA`,
`ghp_`, ...), and JWTs, bearer and basic credentials, private-key blocks have theirs. Its place: a URL's
query parameter named `key`, `api-key`, `token`, `sig`, ... or a URL's password. Its name: an attribute
called `api_key`, `password` or `access_token` holds one whatever it looks like (logfire's default
patterns, plus the names HTTP and OAuth use). A match is replaced by `[scrubbed]`, the rest of the string
is kept: a URL without its key is still the URL.

Attribute names are data too: an instrumentation that keys a map by API key puts the key in a name, so a
name shaped like a credential is never stored or counted as itself.
"""

from __future__ import annotations

import re
from typing import Any

SCRUBBED = "[scrubbed]"
SECRET_NAME_PLACEHOLDER = "[secret-like name]"

# Credential shapes, each with a prefix that ordinary text does not have.
_CREDENTIALS = (
    r"sk-[A-Za-z0-9_-]{16,}",  # OpenAI and every OpenAI-style key: sk-proj-, sk-ant-, sk-or-v1-, DeepSeek
    r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
    r"pplx-[A-Za-z0-9]{16,}",  # Perplexity
    r"hf_[A-Za-z0-9]{16,}",  # Hugging Face
    r"gsk_[A-Za-z0-9]{16,}",  # Groq
    r"xai-[A-Za-z0-9]{16,}",  # xAI
    r"r8_[A-Za-z0-9]{16,}",  # Replicate
    r"fw_[A-Za-z0-9]{16,}",  # Fireworks
    r"nvapi-[A-Za-z0-9_-]{16,}",  # NVIDIA
    r"AIza[0-9A-Za-z_-]{30,}",  # Google API keys (Gemini)
    r"ya29\.[0-9A-Za-z_-]{16,}",  # Google OAuth access tokens (Vertex AI)
    r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",  # AWS access key ids
    r"gh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{30,}",
    r"glpat-[A-Za-z0-9_-]{20,}",  # GitLab
    r"xox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",  # JWTs: header.payload.signature
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[^-]*(?:-----END [A-Z ]*PRIVATE KEY-----)?",
)
# The part of a match to keep (an HTTP scheme, a parameter's name) and the secret after it.
_SECRET_VALUE = re.compile(
    r"(?P<keep>)\b(?:" + "|".join(_CREDENTIALS) + r")"
    # An HTTP credential: the scheme stays, the credential goes.
    r"|(?P<scheme>\b(?:Bearer|Basic) )[A-Za-z0-9._~+/=-]{8,}"
    # A URL's query parameter that carries a credential, and a URL's password.
    r"|(?P<parameter>[?&;](?:key|apikey|api-key|api_key|token|access_token|access-token|id_token|refresh_token"
    r"|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|client_secret|password|secret|auth"
    r"|code)=)[^&#\s\"']+"
    r"|(?P<user>://[^/@\s:\"']*:)[^/@\s\"']+(?=@)",
    re.IGNORECASE,
)


def _replace(match: re.Match) -> str:
    return (match.group("scheme") or match.group("parameter") or match.group("user") or "") + SCRUBBED


# Names that hold a secret whatever its value looks like: logfire's default patterns, and the names HTTP
# and OAuth give credentials.
_SECRET_NAME = re.compile(
    r"password|passwd|mysql_pwd|secret|auth(?!ors?\b)|credential|private[._ -]?key|passphrase"
    r"|(?:signing|hmac)[._ -]?key|api[._ -]?key|session|cookie|social[._ -]?security|credit[._ -]?card"
    r"|(?:access|refresh|bearer|(?:\b|_)id)[._ -]?token|(?:\b|_)(?:csrf|xsrf|jwt|ssn)(?:\b|_)"
    r"|(?:\b|_)token(?:\b|_|$)|x-api-key|x-goog-api-key",
    re.IGNORECASE,
)
_MAX_DEPTH = 32  # deeper than any value the span parser keeps


# Most strings the collector stores come again and again (providers, models, services, hosts, attribute
# names): the ones found clean are remembered, so that a repeat costs a set lookup rather than the search.
# Only clean strings are kept, short ones, and at most _MAX_REMEMBERED: a secret is never held here.
_MAX_REMEMBERED = 4096
_MAX_REMEMBERED_CHARS = 200
_clean: set[str] = set()
_names: dict[str, bool] = {}  # a clean name: whether its value is a secret


def _remember_clean(value: str) -> None:
    if len(value) <= _MAX_REMEMBERED_CHARS:
        if len(_clean) >= _MAX_REMEMBERED:
            _clean.clear()
        _clean.add(value)


def scrub_text(value: str) -> str:
    """`value` with every secret in it replaced."""
    if value in _clean:
        return value
    if _SECRET_VALUE.search(value) is None:  # the common case, in one search
        _remember_clean(value)
        return value
    return _SECRET_VALUE.sub(_replace, value)


def has_secret(value: str) -> bool:
    return value not in _clean and _SECRET_VALUE.search(value) is not None


def secret_name(name: str) -> bool:
    """A name whose value is a secret, or a name that is itself one."""
    known = _names.get(name)
    if known is not None:
        return known
    if _SECRET_VALUE.search(name) is not None:
        return True
    secret = _SECRET_NAME.search(name) is not None
    if len(name) <= _MAX_REMEMBERED_CHARS:
        if len(_names) >= _MAX_REMEMBERED:
            _names.clear()
        _names[name] = secret
    return secret


def safe_name(name: str) -> str:
    """A name that may be stored or counted: a credential used as a name is not."""
    if name in _names or name in _clean:
        return name
    if _SECRET_VALUE.search(name) is not None:
        return SECRET_NAME_PLACEHOLDER
    _remember_clean(name)
    return name


def scrub_value(value: Any, depth: int = 0) -> Any:
    """An attribute value with secrets scrubbed: strings, and the strings inside lists and maps."""
    if isinstance(value, str):
        return scrub_text(value)
    if depth >= _MAX_DEPTH:
        return value if isinstance(value, bool | int | float) or value is None else SCRUBBED
    if isinstance(value, list):
        return [scrub_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {
            safe_name(key): SCRUBBED if secret_name(key) else scrub_value(item, depth + 1)
            for key, item in value.items()
        }
    return value
