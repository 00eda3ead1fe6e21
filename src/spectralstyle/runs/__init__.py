"""The optimisation runs (transfer, train, generate) and what they share: models, outputs, checkpoints, naming,
preflight."""
