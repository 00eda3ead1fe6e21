"""The paper's study in one command: a content x prompt x band grid (batch), judged by an independent CLIP,
summarised with bootstrap intervals (``spectralstyle study``)."""
