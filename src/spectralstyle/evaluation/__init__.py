"""Measuring results: ``metrics.py`` (finding results and sidecars, OCR, CLIP scores, SSIM), ``report.py``
(HTML, CSV, plots), ``analysis.py`` (the spectral analysis), ``video.py`` (videos as results)."""
