"""Pretrained weights: ``sources.py`` (where each model is looked for, in order), ``resolve.py`` (finding what a
run needs, and the one short message when some are missing), ``network.py`` (is a download server there: asked
once per process), ``download.py`` (locked, checked, atomic downloads), ``records.py`` (size and SHA-256 of
downloads without a published digest), ``formats.py`` (the kind of file from its first bytes), ``safeload.py``
(reading any file without running code), ``clip_formats.py`` (every CLIP format into our model),
``state_dicts.py`` (VGG19 and VQGAN state dicts, strict loading). Nothing here imports ``method/``: the
``weights`` command's checks build the method's networks, so they live in ``method/weights_check.py``."""
