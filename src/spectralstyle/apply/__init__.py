"""Applying a trained StyleNet: images, tiles, video."""
