"""The ``strata`` command line: :mod:`infra.cli.main` wires one module per subcommand."""
