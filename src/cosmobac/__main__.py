"""``python -m cosmobac`` runs the command line."""

from .cli import main

main()
