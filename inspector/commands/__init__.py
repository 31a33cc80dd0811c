"""Subcommand modules of the `inspector` CLI; each exposes register(subparsers)."""
