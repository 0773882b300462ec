"""build_info.json's `settings` is a typed `BuildConfig` (ft_artifacts.settings, importable without the
builders): written with `to_dict`, read with `from_dict`, round trip identical; an older artifact's settings
read with defaults for keys it lacks, and a missing required key, an unknown key or a wrong type is one line
naming it."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from ft_artifacts.cli import main
from ft_artifacts.errors import ArtifactError
from ft_artifacts.manifest import BUILD_INFO, read_manifest
from ft_artifacts.settings import BuildConfig, OptimConfig

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format2"


def stored_settings() -> dict:
    return json.loads((FIXTURE / BUILD_INFO).read_text(encoding="utf-8"))["settings"]


def with_settings(tmp_path: Path, change) -> Path:
    """A copy of the format-2 fixture whose build_info.json settings went through `change(dict)`."""
    folder = Path(shutil.copytree(FIXTURE, tmp_path / "art"))
    info = json.loads((folder / BUILD_INFO).read_text(encoding="utf-8"))
    change(info["settings"])
    (folder / BUILD_INFO).write_text(json.dumps(info), encoding="utf-8")
    return folder


def test_builders_presets_still_export_the_one_build_config():
    from ft_artifacts.builders import presets

    assert presets.BuildConfig is BuildConfig
    assert all(isinstance(p, BuildConfig) for p in presets.PRESETS.values())


@pytest.mark.parametrize("config", [
    BuildConfig(),
    BuildConfig(model="minilm", neuron_fraction=1.0, neurons_per_layer=5, ks=(3,), selections=("relative",),
                optim=OptimConfig(steps=7, lr=0.5, init_std=0.0, method="plain"), precision="bf16", nearest=2),
], ids=["defaults", "every-field-changed"])
def test_a_build_config_round_trips_through_json(config: BuildConfig):
    data = json.loads(json.dumps(config.to_dict(), allow_nan=False))
    assert BuildConfig.from_dict(data) == config
    assert BuildConfig.from_dict(data).to_dict() == data
    assert isinstance(data["ks"], list) and isinstance(data["optim"], dict)


def test_the_manifest_holds_the_fixture_settings_typed_and_writes_them_back_unchanged():
    manifest = read_manifest(FIXTURE)
    settings = manifest.settings
    assert isinstance(settings, BuildConfig) and isinstance(settings.optim, OptimConfig)
    raw = stored_settings()
    assert settings.to_dict() == raw  # every key of the old artifact read, none added
    assert settings.ks == tuple(raw["ks"]) and settings.optim.steps == raw["optim"]["steps"]
    assert manifest.to_dict()["settings"] == raw


def test_keys_an_older_artifact_lacks_take_the_declared_defaults(tmp_path: Path):
    dropped = ("precision", "scan_batch", "nearest")
    folder = with_settings(tmp_path, lambda s: [s.pop(k) for k in dropped] + [s["optim"].pop("trace_every")])
    settings = read_manifest(folder).settings
    defaults = BuildConfig()
    for name in dropped:
        assert getattr(settings, name) == getattr(defaults, name)
    assert settings.optim.trace_every == OptimConfig().trace_every
    kept = {f.name for f in fields(BuildConfig)} - set(dropped) - {"optim", "directions"}  # directions: written only when given
    assert {k: v for k, v in settings.to_dict().items() if k in kept} == {k: stored_settings()[k] for k in kept}


@pytest.mark.parametrize("change,needle", [
    (lambda s: s.pop("model"), "settings lacks 'model'"),
    (lambda s: s.pop("optim"), "settings lacks 'optim'"),
    (lambda s: s.update(directions_file="d.npy"), "settings has key(s) 'directions_file' that this ft-artifacts does not know"),
    (lambda s: s["optim"].update(momentum=0.9), "settings.optim has unknown key(s) momentum"),
    (lambda s: s.update(ks="3,8"), "settings.ks is not a list"),
    (lambda s: s.update(chunk_rows="16"), "settings.chunk_rows is not a int"),
], ids=["no-model", "no-optim", "unknown", "unknown-optim", "ks-type", "chunk-type"])
def test_bad_settings_are_one_line_naming_the_key(tmp_path: Path, change, needle: str):
    folder = with_settings(tmp_path, change)
    with pytest.raises(ArtifactError) as err:
        read_manifest(folder)
    message = str(err.value)
    assert needle in message and "\n" not in message and message.startswith(str(folder / BUILD_INFO)), message
    result = CliRunner().invoke(main, ["info", str(folder)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and needle in result.stderr

