"""Renamed names stay readable: `ft_artifacts.session` (now `ft_artifacts.commands`) still imports the same
functions, and `LoadedModel.extra` (now `LoadedModel.cache`) still reads the same dict, with a
DeprecationWarning."""

from __future__ import annotations

import importlib

import pytest


def test_session_is_a_thin_alias_of_commands():
    commands, session = importlib.import_module("ft_artifacts.commands"), importlib.import_module("ft_artifacts.session")
    public = {n for n in vars(commands) if not n.startswith("_") and callable(getattr(commands, n))
              and getattr(getattr(commands, n), "__module__", None) == commands.__name__}
    assert public and public <= set(vars(session)), public - set(vars(session))
    assert all(getattr(session, n) is getattr(commands, n) for n in public)


def test_loaded_model_extra_reads_the_cache_with_a_deprecation_warning(tiny):
    tiny.token_id(tiny.tokens[5])  # fills the cache's token index
    assert "token_index" in tiny.cache
    with pytest.warns(DeprecationWarning, match="LoadedModel.extra is now LoadedModel.cache"):
        assert tiny.extra is tiny.cache
