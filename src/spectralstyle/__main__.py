"""``python -m spectralstyle`` (also what ``torchrun -m spectralstyle`` runs)."""

from .cli.app import main

main()
