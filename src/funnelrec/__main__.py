"""``python -m funnelrec`` runs the CLI."""

from funnelrec.cli.app import main

main()
