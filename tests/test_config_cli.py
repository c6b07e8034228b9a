"""Settings load from TOML, reject bad input clearly, and `colisten config show` prints them."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from colisten.cli import app
from colisten.config import ConfigError, load_settings, settings_as_toml


def test_paper_defaults():
    s = load_settings()
    assert s.data.history_days == 90
    assert s.data.holdout_days == 14
    assert s.data.target_type == "audiobook"
    assert s.data.strong_events == ["stream"]
    assert s.data.weak_events == ["follow", "preview", "intent_to_pay"]
    assert s.hgnn.lr == 1e-3 and s.hgnn.batch_size == 256 and s.hgnn.epochs == 50 and s.hgnn.patience == 10
    assert s.twotower.tower_dims == [512, 256, 128] and s.twotower.batch_size == 128


def test_toml_overrides_and_roundtrip(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[data]\nholdout_days = 7\n[hgnn]\nfanouts = [4, 2]\n")
    s = load_settings(f)
    assert s.data.holdout_days == 7 and s.hgnn.fanouts == [4, 2]
    assert s.data.history_days == 90
    # the printed TOML is itself a valid config that reproduces the settings
    g = tmp_path / "shown.toml"
    g.write_text(settings_as_toml(s))
    assert load_settings(g) == s


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[data]\nholdout_days = -1\n", "holdout_days"),
        ("[data]\nnot_a_setting = 1\n", "not_a_setting"),
        ("[data\n", "invalid TOML"),
        ('[data]\nweak_events = ["stream"]\n', "both strong and weak"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, fragment):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(f)


def test_config_show_cli(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[graph]\nmin_cocount = 3\n")
    result = CliRunner().invoke(app, ["config", "show", "--config", str(f)])
    assert result.exit_code == 0, result.output
    assert "min_cocount = 3" in result.output
    assert "history_days = 90" in result.output


def test_cli_error_exit_code_and_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "colisten", "config", "show", "--config", str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "config file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def _commands(group, prefix=()):
    """(path, click command) of every command and sub-command of the CLI."""
    import typer.main

    root = typer.main.get_command(group) if not hasattr(group, "commands") else group
    for name, cmd in root.commands.items():
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))


def test_every_help_is_plain_text_within_80_columns():
    """`--help` piped or in an 80-column terminal: no line over 80 characters, and every settings
    section a help text names ("[tune] trials") is printed (rich markup would swallow it)."""
    import re

    from colisten.config import Settings

    sections = set(Settings.model_fields)
    runner = CliRunner()
    checked = 0
    for path, cmd in _commands(app):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert result.exit_code == 0, (path, result.output)
        too_wide = [line for line in result.output.splitlines() if len(line) > 80]
        assert not too_wide, (path, too_wide)
        sources = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        named = {m for text in sources for m in re.findall(r"\[(\w+)\]", text) if m in sections}
        flat = " ".join(result.output.split())
        for section in named:
            assert f"[{section}]" in flat, (path, section)
        checked += bool(named)
    assert checked >= 2  # tune and graph name their sections
