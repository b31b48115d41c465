"""Command groups kept out of ``main.py``: each module adds its subcommands with
``register(subparsers, common)`` and runs them with ``func(args, out)`` like main's own."""
