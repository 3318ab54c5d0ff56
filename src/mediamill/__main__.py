"""``python -m mediamill``: the command line."""

from mediamill.cli import main

main()
