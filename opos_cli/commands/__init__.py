"""Groups of ``opos`` subcommands, each registered on the parser by its module."""
