"""Measuring results: ``inputs`` (finding results, their run records, the models they ask for), ``ocr``
(written words), ``scores`` (CLIP, directional, SSIM, VGG distance), ``metrics`` (the evaluation),
``video`` (videos as results), ``outputs`` (file names, never overwriting another evaluation),
``report`` (HTML, CSV, plots) and ``analysis`` (the spectral analysis)."""
