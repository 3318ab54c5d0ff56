"""``python -m mediamill`` and the ``mediamill`` console script.

The console script imports this module, not ``mediamill.cli``: multiprocessing re-imports
the script in every worker process it starts, and a worker has no use for the command line
(importing it costs a worker 0.6 CPU s and 35 MB).
"""


def main() -> None:
    import sys

    from mediamill.walk import start_ahead

    start_ahead(sys.argv[1:])  # a folder to scan is walked while the rest loads
    from mediamill.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
