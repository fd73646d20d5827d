import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from benchkit.config import RunConfig, load_parameters
from benchkit.errors import ConfigError

REPO_PARAMS = [
    "parameters/human_eval-gemma3-270m.yaml",
    "parameters/human_eval-smoke.yaml",
    "parameters/lcb-gemma3-270m.yaml",
]


@pytest.mark.parametrize("name", REPO_PARAMS)
def test_shipped_parameters_are_valid(name):
    from tests.conftest import REPO

    assert load_parameters(REPO / name).benchmark == name.split("/")[1].split("-")[0]


def test_wrong_type_names_file_key_and_type(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("benchmark: human_eval\ntemperature: hot\n")
    with pytest.raises(ConfigError) as exc:
        load_parameters(path)
    message = str(exc.value)
    assert str(path) in message and "'temperature'" in message and "valid number" in message


def test_unknown_key_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("temprature: 0.2\n")
    with pytest.raises(ConfigError, match="unknown key 'temprature'"):
        load_parameters(path)


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("benchmark: human_eval\nlimit: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_parameters(path)


def test_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_parameters(path)


def test_out_of_range_value():
    with pytest.raises(ValidationError, match="top_p"):
        RunConfig(top_p=0)


def test_each_sample_gets_its_own_seed():
    config = RunConfig(seed=10, temperature=0.7, min_p=0.05)
    first, second = config.sampling(0, ["\ndef "]), config.sampling(1, ["\ndef "])
    assert (first.seed, second.seed) == (10, 11)
    assert first.min_p == 0.05 and first.stop == ["\ndef "]
    assert RunConfig(stop=["X"]).sampling(0, ["\ndef "]).stop == ["X"]


def test_a_benchmarks_own_settings_live_in_its_module_yet_are_run_settings():
    from benchkit import cli
    from benchkit.benchmarks.lcb import LCBSettings, LiveCodeBench
    from benchkit.config import CoreSettings, OutputSettings, benchmark_fields, validate_config

    assert LiveCodeBench.settings is LCBSettings and LCBSettings.__module__ == "benchkit.benchmarks.lcb"
    own = list(LCBSettings.model_fields)
    assert "release" in own and "lcb_corrected" in own and not set(own) & set(CoreSettings.model_fields)
    # shared settings, then each benchmark's, then where results go: help's and stored settings' order
    assert list(RunConfig.model_fields) == [
        *CoreSettings.model_fields,
        *benchmark_fields(),
        *OutputSettings.model_fields,
    ]
    args = ["run", "--benchmark", "lcb", "--release", "v2", "--lcb-corrected", "--start-date", "2025-02-01"]
    config = cli._run_config(cli._parser().parse_args(args))
    assert (config.release, config.lcb_corrected, str(config.start_date)) == ("v2", True, "2025-02-01")
    assert config.settings()["release"] == "v2" and config.identity()["lcb_corrected"] is True
    with pytest.raises(ConfigError, match=r"'release' \(--release\)"):
        cli._run_config(cli._parser().parse_args(["run", "--release", "v9"]))
    with pytest.raises(ConfigError, match="unknown key 'lcb_corected'"):
        validate_config({"lcb_corected": True}, "test")


def test_help_groups_keep_their_order():
    from benchkit.config import fields

    groups = [RunConfig.model_fields[name].json_schema_extra["group"] for name in fields()]
    assert list(dict.fromkeys(groups)) == [
        "sampling",
        "benchmark",
        "model",
        "grading",
        "backend",
        "data",
        "output",
    ]


def test_a_new_benchmark_declares_its_options_in_its_own_module(tmp_path):
    """One module and its registry entry: its settings become RunConfig fields and CLI flags."""
    from tests.conftest import REPO

    (tmp_path / "toy_benchmark.py").write_text(
        "from benchkit.benchmarks.base import Benchmark\n"
        "from benchkit.settings import Settings, setting\n"
        "class ToySettings(Settings):\n"
        "    toy_split: str = setting('test', 'toy: which split', group='toy')\n"
        "class Toy(Benchmark):\n"
        "    name, default_timeout, settings = 'toy', 1.0, ToySettings\n"
    )
    script = (
        "from benchkit import benchmarks\n"
        "benchmarks.BENCHMARKS['toy'] = 'toy_benchmark:Toy'\n"
        "from benchkit import cli\n"
        "from benchkit.config import RunConfig\n"
        "args = cli._parser().parse_args(['run', '--benchmark', 'toy', '--toy-split', 'train'])\n"
        "config = cli._run_config(args)\n"
        "print(config.toy_split, config.identity()['toy_split'], list(RunConfig.model_fields)[-3:])\n"
        "cli._parser().parse_args(['run', '--help'])\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    first, *help_text = done.stdout.splitlines()
    assert first == "train train ['lcb_corrected', 'toy_split', 'results_dir']"  # registry order
    assert "toy:" in help_text and any("--toy-split" in line for line in help_text)
