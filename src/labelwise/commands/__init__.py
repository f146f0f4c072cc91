"""Subcommands of the ``labelwise`` CLI, one module each (see ``labelwise.commands.cli``)."""
