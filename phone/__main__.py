"""``python -m phone``: the ``vphone`` command line, for environments without the script."""

from phone.cli import run

if __name__ == "__main__":
    run()
