"""The method of the paper: spectral filter, bands, CLIP, StyleNet, crops, VGG, losses, prompts, generators."""
