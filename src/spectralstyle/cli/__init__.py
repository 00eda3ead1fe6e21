"""The command line: ``app.py`` builds the app and registers every command; one module per command
(``transfer`` and ``apply`` live in app.py); ``common.py`` holds the console, errors and the options
built from the settings declarations."""

from spectralstyle.cli.app import app, main

__all__ = ["app", "main"]
