"""``python -m modelshield`` runs the CLI."""

from modelshield.cli.main import main

main()
