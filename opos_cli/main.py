"""Entry point of the ``opos`` console script."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("opos: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
