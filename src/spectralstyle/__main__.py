"""``python -m spectralstyle`` (also what ``torchrun -m spectralstyle`` runs)."""

from spectralstyle.cli.app import main

main()
