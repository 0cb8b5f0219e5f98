"""GET requests to a provider's admin API, retried the way the providers ask, with the key kept out of sight.

On httpx2, already a dependency (the instrumentation patches it, and google-genai runs on it), so that the
importer adds nothing to install. A 429 is retried after its `Retry-After` (seconds or an HTTP date) or
an exponential backoff, whichever is longer; so are 5xx answers (Anthropic's 529 "overloaded" too) and
connections that fail. Anything else is an `AdminApiError`: one line with the provider, the status, the
path and the provider's own message — from which the admin key is removed, and anything shaped like a
key masked, since providers quote credentials back in their errors. The key travels in one header and
appears in no log line, no exception and no URL.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from spendwatch.billing.config import Secret
from spendwatch.errors import UserError

logger = logging.getLogger("spendwatch.billing")

RETRIED = {429, 500, 502, 503, 504, 529}
MAX_ATTEMPTS = 6
BACKOFF_SECONDS = 1.0  # the first retry's wait; doubled at each attempt
MAX_WAIT_SECONDS = 120.0
TIMEOUT_SECONDS = 60.0
_KEY_LIKE = re.compile(r"\b(?:sk|key|apikey|admin)[-_][A-Za-z0-9*._-]{6,}", re.IGNORECASE)


MAX_PAGES = 10_000  # a bound on one listing's pages, whatever a provider's answers say


class AdminApiError(UserError):
    """A provider's admin API refused or failed: one line, the key nowhere in it."""


def scrub(text: str, secret: Secret) -> str:
    """`text` with the admin key removed and anything shaped like a key masked."""
    key = secret.reveal()
    if key:
        text = text.replace(key, "***")
    return _KEY_LIKE.sub("***", text)


class AdminClient:
    def __init__(
        self,
        provider: str,
        base_url: str,
        secret: Secret,
        auth_headers: Callable[[str], dict[str, str]],
        *,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = BACKOFF_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        import httpx2

        self.provider = provider
        self._secret = secret
        self._sleep = sleep
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._client = httpx2.Client(
            base_url=base_url,
            headers={**auth_headers(secret.reveal()), "accept": "application/json", "user-agent": "spendwatch"},
            timeout=TIMEOUT_SECONDS,
        )
        self.requests = 0  # requests sent, retries included

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def get(self, path: str, params: Sequence[tuple[str, str]]) -> Any:
        """The JSON of `GET path?params`, retried on rate limits and passing failures."""
        import httpx2

        for attempt in range(1, self._max_attempts + 1):
            self.requests += 1
            try:
                response = self._client.get(path, params=list(params))
            except httpx2.TransportError as error:
                status, reason, wait = None, type(error).__name__, None
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise self._error(f"{response.status_code} with a body that is not JSON", path) from None
                if response.status_code not in RETRIED:
                    raise self._error(f"{response.status_code}{self._hint(response.status_code)}", path, response)
                status, reason = response.status_code, "rate limited" if response.status_code == 429 else "failed"
                wait = retry_after(response.headers.get("retry-after"))
            if attempt == self._max_attempts:
                break
            delay = min(max(wait or 0.0, self._backoff * 2 ** (attempt - 1)), MAX_WAIT_SECONDS)
            logger.warning(
                "%s admin API: %s (%s) on %s; retrying in %.1f s (attempt %d of %d)",
                self.provider,
                status or "no answer",
                reason,
                path,
                delay,
                attempt + 1,
                self._max_attempts,
            )
            self._sleep(delay)
        raise self._error(f"{status or reason}: still {'rate limited' if status == 429 else 'failing'} after "
                          f"{self._max_attempts} attempts", path)  # fmt: skip

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            return " (the admin key was refused: check that it is an admin key of this organisation)"
        return ""

    def _error(self, what: str, path: str, response: Any = None) -> AdminApiError:
        message = _provider_message(response) if response is not None else ""
        text = f"{self.provider} admin API: {what} on {path}" + (f": {message}" if message else "")
        return AdminApiError(scrub(" ".join(text.split()), self._secret)[:500])


def _provider_message(response: Any) -> str:
    try:
        document = response.json()
    except ValueError:
        return ""
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return ""


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def buckets(client: AdminClient, path: str, params: list, stream: Any) -> Iterator[dict]:
    """The time buckets of a usage or cost report, page after page (`next_page` while `has_more`, as both
    providers' admin APIs page them), each page counted in `stream`. A page given twice, or more than
    MAX_PAGES of them, stops the listing with an error rather than looping."""
    page: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        document = client.get(path, [*params, *([("page", page)] if page else [])])
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, list):
            raise AdminApiError(f"{client.provider} admin API: an answer without a data list on {path}")
        stream.pages += 1
        for bucket in data:
            stream.buckets += 1
            yield bucket
        page = document.get("next_page")
        if not document.get("has_more") or not page:
            return
        if page in seen:
            raise AdminApiError(f"{client.provider} admin API: the same next_page twice on {path}; stopped")
        seen.add(page)
    raise AdminApiError(f"{client.provider} admin API: more than {MAX_PAGES} pages on {path}; stopped")
