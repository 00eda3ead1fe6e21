"""Pretrained weights: ``sources.py`` (where each model is looked for, in order, and the one message when
none has it), ``download.py`` (locked, checked, atomic downloads), ``safeload.py`` (reading any file
without running code), ``clip_formats.py`` (every CLIP format into our model), ``check.py`` (loading
and placing files for the ``weights`` command)."""
