"""The SpectralCLIP paper's protocol: its 12 styles, the band it recommends for each, its settings.

Pure Python (the command line reads it without importing torch). The authors' 11 content images are not
shipped (no licence): a study runs on the content a user gives.
"""

from __future__ import annotations

PAPER_BANDS: dict[str, tuple[str, ...]] = {
    "c1": ("Lowbrow", "Outsider art", "Visionary art", "Rosy-color oil painting"),
    "c2": ("Pop art", "Cartoon", "Giorgio Morandi", "Harlem Renaissance", "Neon art", "Contemporary art"),
    "c3": ("Fauvism", "Digital art"),
}
"""The band the paper recommends for each of its styles (docs/method.md, the band table)."""

PAPER_STYLES: tuple[str, ...] = tuple(style for styles in PAPER_BANDS.values() for style in styles)
STUDY_BANDS: tuple[str, ...] = ("none", "c1", "c2", "c3")
"""Every style is run with plain CLIP and each of the three bands."""

PAPER_SETTINGS: dict[str, int] = {"width": 512, "height": 512, "steps": 200, "crops": 64, "seed": 1234}
"""The paper's transfer settings; with ``--protocol paper`` they hold unless a flag overrides them."""

JUDGES: tuple[str, ...] = ("ViT-B/16", "ViT-L/14")
DEFAULT_JUDGE = "ViT-B/16"
PROTOCOLS: tuple[str, ...] = ("paper", "custom")


def recommended_band(style: str) -> str:
    """The paper's band for a style, matched case-insensitively ('pop art' -> 'c2'); '' for other prompts."""
    wanted = " ".join(style.lower().split())
    for band, styles in PAPER_BANDS.items():
        if any(wanted == s.lower() for s in styles):
            return band
    return ""
