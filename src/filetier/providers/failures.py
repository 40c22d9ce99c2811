"""What a provider's answer means, as a filetier error: the rules every SDK shares.

Each adapter has one ``translate`` that reads its SDK's exception (status code, the
server's message, ``Retry-After``, or a transport failure) and hands it to
:func:`refused`, :func:`timed_out` or :func:`unreachable` here. So the rule "which status
is which error" has one owner, whatever the SDK::

    401, 403            ProviderAuthError           the key was refused
    404                 ProviderInputError          no such file (``file_missing``) or model
    429                 ProviderRateLimitedError    retried; ``Retry-After`` honoured
    5xx                 ProviderUnavailableError    retried
    413, "too large"    ProviderLimitError          nothing more is sent
    "purpose" (upload)  UnsupportedPurposeError
    "quota", "limit"    ProviderLimitError
    400, 422            ProviderInputError          the caller's mistake, not an outage
    other 4xx           ProviderRequestError
    timeout             ProviderTimeoutError        retried
    unreachable         ProviderUnavailableError    retried

Which of these are worth another attempt is :data:`filetier.providers.retrying.RETRYABLE`.
Messages name the provider, its base URL and the action, never the API key (masked
wherever the server echoes it).
"""

from __future__ import annotations

from dataclasses import dataclass

from filetier.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderInputError,
    ProviderLimitError,
    ProviderRateLimitedError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnsupportedPurposeError,
)

UPLOAD = "upload a file"
DETAIL_CHARS = 300
QUOTA_WORDS = ("quota", "limit", "exceed", "too many")


@dataclass(frozen=True, slots=True)
class Call:
    """One provider call, as its error messages name it."""

    provider: str  # "kimi"
    base_url: str
    key: str
    action: str  # "upload a file": messages read "while trying to <action>"

    @property
    def who(self) -> str:
        return f"{self.provider} ({self.base_url})"

    def scrub(self, text: str) -> str:
        """``text`` cut short and with the API key masked (servers echo it back)."""
        text = text[:DETAIL_CHARS]
        return text.replace(self.key, "****") if self.key else text


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the HTTP-date form is not used by providers)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def timed_out(call: Call) -> ProviderTimeoutError:
    return ProviderTimeoutError(f"{call.who} did not answer in time while trying to {call.action}")


def unreachable(call: Call) -> ProviderUnavailableError:
    return ProviderUnavailableError(f"{call.who} could not be reached to {call.action}")


def key_refused(call: Call) -> ProviderAuthError:
    return ProviderAuthError(
        f"{call.who} refused the API key while trying to {call.action}: check "
        f"{call.provider.upper()}_API_KEY"
    )


def file_missing(call: Call, detail: str = "") -> ProviderInputError:
    """The provider does not have the file (any more): lookups and deletes answer None or
    False on it, any other call raises it as the caller's mistake."""
    suffix = f": {call.scrub(detail)}" if detail else ""
    return ProviderInputError(
        f"{call.who} does not have what was asked for while trying to {call.action}{suffix}",
        file_missing=True,
    )


def refused(
    call: Call, status: int, detail: str, retry_after: float | None = None
) -> ProviderError:
    """The error for an HTTP refusal ``status`` with the server's message ``detail``."""
    detail = call.scrub(detail) or "no detail"
    lowered = detail.lower()
    if status in (401, 403):
        return key_refused(call)
    if status == 404:
        return file_missing(call, detail)
    if status == 429:
        hint = f" (Retry-After {retry_after:g}s)" if retry_after is not None else ""
        return ProviderRateLimitedError(
            f"{call.who} is rate limiting requests{hint}; try again later", retry_after
        )
    if status >= 500:
        return ProviderUnavailableError(
            f"{call.who} failed with HTTP {status} while trying to {call.action}; try again later"
        )
    if status == 413 or any(
        words in lowered for words in ("too large", "exceeded max file size", "file size")
    ):
        return ProviderLimitError(f"{call.who} refused the file as too large: {detail}")
    if "purpose" in lowered and call.action == UPLOAD:
        return UnsupportedPurposeError(f"{call.who} does not accept that purpose: {detail}")
    if any(word in lowered for word in QUOTA_WORDS):
        return ProviderLimitError(f"{call.who} quota is full: {detail}")
    message = f"{call.who} refused the request to {call.action} (HTTP {status}): {detail}"
    if status in (400, 422):
        # A malformed argument, an unknown model: retrying or paging an operator cannot
        # help, so it is reported as bad input (HTTP 400, exit 2), not as a 502.
        return ProviderInputError(message)
    return ProviderRequestError(message)
