"""``python -m spectralstyle`` (also what ``torchrun -m spectralstyle`` runs)."""

from .cli import main

main()
