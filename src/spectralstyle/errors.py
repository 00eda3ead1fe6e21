"""Errors a user can fix; the CLI prints their message on one line and exits with code 2."""

MESSAGE_LIMIT = 480
"""The longest error line printed: a 100 kB prompt or YAML value is shown shortened, never in full."""


class SpectralStyleError(Exception):
    """A user-facing problem (bad input, missing weights, unsupported device) with a one-line message."""


class WeightsMissingError(SpectralStyleError):
    """Pretrained weights are neither cached nor downloadable (for example offline)."""


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut in the middle to at most ``limit`` characters ('a very lo … text'), for messages."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - 5, 2)
    return f"{text[: keep - keep // 3]} … {text[-(keep // 3):]}"
