"""The settings machinery: how a ``setting()`` declaration becomes options, YAML keys, checks and a hash.

The declarations themselves (what a newcomer reads) are in :mod:`spectralstyle.settings`.
"""
