"""Batch runs over folders: plan, shards, job claims, manifest, runner."""
