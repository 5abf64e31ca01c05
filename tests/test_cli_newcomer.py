"""What a newcomer meets first: every command's --help has an example, and help and early refusals load no torch."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ganlstm.cli import COMMANDS, EXAMPLES

# Runs one CLI call in a fresh interpreter and reports whether torch was imported by the end.
_PROBE = """
import json, sys
from ganlstm.cli import main
sys.argv = ["ganlstm", *json.loads(sys.argv[1])]
code = 0
try:
    main()
except SystemExit as e:
    code = e.code or 0
print(json.dumps({"torch": "torch" in sys.modules, "code": code}), file=sys.stderr)
"""


def _probe(*args: str) -> tuple[dict, str]:
    r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(list(args))], capture_output=True, text=True, timeout=60)
    return json.loads(r.stderr.strip().splitlines()[-1]), r.stdout + r.stderr


def test_every_command_has_an_example_that_names_it():
    assert set(EXAMPLES) == set(COMMANDS)
    for name, line in EXAMPLES.items():
        assert line.startswith(f"ganlstm {name} "), line


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_the_example_without_importing_torch(name):
    result, text = _probe(name, "--help")
    assert result["code"] == 0
    assert "Example:" in text and EXAMPLES[name] in text
    assert result["torch"] is False, f"`ganlstm {name} --help` imported torch"


def test_demo_seed_matches_the_library():
    from ganlstm.commands.demo import DEMO_SEED as cli_seed
    from ganlstm.demo import DEMO_SEED

    assert cli_seed == DEMO_SEED


@pytest.mark.parametrize("args", [
    ["train-gan", "--data", "/no/such/frames"],
    ["train-encoder", "--gan", "/no/such/gan.pt", "--data", "."],
    ["train-baseline", "--data", "/no/such/frames"],
    ["predict", "--frames", "/no/such/frames", "--steps", "3"],
    ["evaluate", "--checkpoint", "/no/such.pt", "--data", ".", "--context", "2", "--horizon", "2", "--out", "e"],
    ["fit", "--data", "/no/such/movie.gif", "--out", "runs/x"],
    ["sample", "--checkpoint", "/no/such.pt", "--out", "s.png"],
    ["train-gan", "--bogus-flag"],
    ["simulate", "--out", "{nonempty}", "--sequences", "1", "--frames", "2", "--size", "8"],
])
def test_early_refusals_load_no_torch_and_exit_2(args, tmp_path):
    (tmp_path / "notes.txt").write_text("not a simulation")
    args = [a.replace("{nonempty}", str(tmp_path)) for a in args]
    result, text = _probe(*args)
    assert result["code"] == 2 and "Traceback" not in text, text
    assert result["torch"] is False, f"`ganlstm {' '.join(args)}` imported torch before refusing: {text}"
