"""Errors a user can fix; the CLI prints their message on one line and exits with code 2."""


class SpectralStyleError(Exception):
    """A user-facing problem (bad input, missing weights, unsupported device) with a one-line message."""


class WeightsMissingError(SpectralStyleError):
    """Pretrained weights are neither cached nor downloadable (for example offline)."""
