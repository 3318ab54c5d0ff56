"""``python -m mediamill`` and the ``mediamill`` console script.

The console script imports this module, not ``mediamill.cli``: multiprocessing re-imports
the script in every worker process it starts, and a worker has no use for the command line
(importing it costs a worker 0.6 CPU s and 35 MB).
"""


def main() -> None:
    import gc
    import sys

    from mediamill.walk import start_ahead

    start_ahead(sys.argv[1:])  # a folder to scan is walked while the rest loads
    # loading the command line (SQLAlchemy, pydantic, Typer) makes objects that live as long
    # as the process: collecting while they are made, then going through them again in every
    # full collection of a job, is a tenth of an unchanged re-run's CPU time for nothing
    gc.disable()
    from mediamill.cli import main as cli_main

    gc.freeze()
    gc.enable()
    cli_main()


if __name__ == "__main__":
    main()
