"""The benchmark: ``reference.py`` is the literal reference pattern of one step, ``runner.py`` times it
against our pipeline, each in its own process."""
