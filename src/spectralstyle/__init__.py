"""spectralstyle: text-guided style transfer with SpectralCLIP."""
__version__ = "0.1.0"

# Public names imported on first access, so that `import spectralstyle` (and every --help) stays free of torch.
_LAZY = {
    "spectral_clip": "spectralstyle.method.any_clip",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spectralstyle' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
