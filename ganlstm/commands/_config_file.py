"""``--config FILE``: any command's flags from a TOML file, and the resolved flags written back.

A key is a flag's name, with dashes or underscores (``max-steps = 3000``, ``hidden = [32, 32]``).
Flags given on the command line win over the file. Every training run writes the flags it was
started with to ``config.toml`` in its run directory, and ``--config runs/000-gan/config.toml``
starts the same run again (``--resume`` continues it instead).

The file fills click's ``default_map`` from an eager option, so values pass through the same
types and checks as typed flags. An unknown key or a broken file is one sentence and exit 2.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import GanlstmError

# Never written back: they say what to do with this invocation, not how the run is set up.
_NOT_RECORDED = {"config", "resume", "overwrite", "help"}


def load_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise GanlstmError(f"--config {path} cannot be read ({e.strerror or e}); check the path.") from None
    except tomllib.TOMLDecodeError as e:
        raise GanlstmError(f"--config {path} is not valid TOML ({e}); fix the line it names.") from None


def _as_default(param: click.Parameter, value: Any) -> Any:
    """A TOML value in the form click would have parsed from the command line."""
    if isinstance(value, list):
        if param.multiple:
            return [str(v) for v in value]
        return ",".join(str(v) for v in value)  # e.g. --hidden 32,32
    if isinstance(value, bool) or value is None:
        return value
    return str(value)


def _read_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    data = load_toml(value)
    params = {p.name: p for p in ctx.command.params if p.name and p.name not in _NOT_RECORDED}
    defaults = {}
    for key, item in data.items():
        name = key.replace("-", "_")
        if isinstance(item, dict):
            raise GanlstmError(f"--config {value}: [{key}] is a table; write every flag as a top-level key (e.g. max-steps = 3000).")
        if name not in params:
            valid = ", ".join(sorted(n.replace("_", "-") for n in params))
            raise GanlstmError(f"--config {value} has the key {key!r}, which `ganlstm {ctx.info_name}` has no flag for; valid keys: {valid}.")
        defaults[name] = _as_default(params[name], item)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def processed(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A TOML value as the command would see it: through the flag's type and callback."""
    return param.process_value(ctx, _as_default(param, value))


def add_config_option(command: click.Command) -> click.Command:
    """Give ``command`` a ``--config FILE`` option (once), read before its other flags."""
    if any(p.name == "config" for p in command.params):
        return command
    command.params.insert(0, click.Option(
        ["--config"], type=click.Path(path_type=Path, dir_okay=False), is_eager=True, expose_value=False, callback=_read_config,
        help="Read flags from this TOML file (keys are flag names; flags on the command line win). "
             "A run's config.toml starts the same run again."))
    return command


def from_file(ctx: click.Context, name: str) -> bool:
    """True when flag ``name`` took its value from ``--config``."""
    return ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT_MAP


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def resolved_toml(ctx: click.Context, params: dict[str, Any]) -> str:
    """The flags of this invocation (command line, file and defaults) as TOML, one key per flag."""
    lines = [f"# ganlstm {ctx.info_name}: the flags this run started with. Start it again with",
             f"#   ganlstm {ctx.info_name} --config config.toml   (or continue it with --resume)"]
    for name in sorted(params):
        value = params[name]
        if name in _NOT_RECORDED or value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        lines.append(f"{name.replace('_', '-')} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def writer(ctx: click.Context, params: dict[str, Any]):
    """An ``on_start`` callback for the trainers: write ``config.toml`` into the new run directory."""
    text = resolved_toml(ctx, params)

    def on_start(run_dir: Path) -> None:
        from ..checkpoint import atomic_write_bytes

        atomic_write_bytes(Path(run_dir) / "config.toml", text.encode())

    return on_start
