"""Pretrained weights: ``sources.py`` (where each model is looked for, in order), ``resolve.py`` (finding what a
run needs, and the one short message when some are missing), ``network.py`` (is a download server there: asked
once per process), ``download.py`` (locked, checked, atomic downloads), ``records.py`` (size and SHA-256 of
downloads without a published digest), ``formats.py`` (the kind of file from its first bytes), ``safeload.py``
(reading any file without running code), ``clip_formats.py`` (every CLIP format into our model),
``state_dicts.py`` (VGG19 and VQGAN state dicts, strict loading), ``check.py`` (loading and placing files for
the ``weights`` command). Nothing here imports ``method/`` but ``check.py``'s VQGAN check, which builds the
decoder through its public loader."""
