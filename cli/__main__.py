"""``python -m buque.cli``: the ``buque`` command."""

from buque.cli import main

main()
