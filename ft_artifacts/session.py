"""Deprecated name of `ft_artifacts.commands` (the one library call behind each CLI command), kept so that
`from ft_artifacts.session import ...` still works. Import from ft_artifacts.commands instead."""

from .commands import *  # noqa: F401,F403 - every public name of commands, whatever it grows to
