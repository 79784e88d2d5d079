"""The command line: help, version, JSON output, default paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nb2pipe.cli import main
from nb2pipe.version import __version__
from tests.support.nbtools import EXAMPLES


def test_help_and_version_do_not_load_kfp():
    probe = (
        "import sys\nfrom nb2pipe.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('kfp' in sys.modules, 'nbformat' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False False"
    done = subprocess.run([sys.executable, "-m", "nb2pipe", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"nb2pipe {__version__}"


def test_help_and_compile_load_no_heavy_library(tmp_path: Path):
    notebook, output = str(EXAMPLES / "torch_digits.ipynb"), str(tmp_path / "out.yaml")  # imports torch
    probe = (
        "import sys\nfrom nb2pipe.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"assert main(['compile', {notebook!r}, '-o', {output!r}]) == 0\n"
        "heavy = {'mlflow', 'kserve', 'alibi', 'alibi_detect', 'tensorflow', 'numba', 'torch', 'triton', 'captum'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_compile_json_reports_steps_and_edges(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    target = tmp_path / "out.yaml"
    assert main(["compile", str(EXAMPLES / "fan_out.ipynb"), "-o", str(target), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["output"] == str(target) and target.exists()
    assert {s["name"]: s["upstream"] for s in report["steps"]}["compare"] == ["forest", "logistic", "neighbours"]


def test_compile_name_and_image_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    target = tmp_path / "out.yaml"
    assert (
        main(
            [
                "compile",
                str(EXAMPLES / "parameters_metrics.ipynb"),
                "-o",
                str(target),
                "--name",
                "Custom Name",
                "--image",
                "registry.example.com/base:1",
            ]
        )
        == 0
    )
    text = target.read_text()
    assert "name: custom-name" in text
    assert "image: registry.example.com/base:1" in text
    assert "2 step(s): generate, fit" in capsys.readouterr().out


def test_json_errors_are_machine_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "bad.ipynb"
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "source": "x = y",
                        "metadata": {"tags": ["step:a"]},
                        "outputs": [],
                        "execution_count": 4,
                    }
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    assert main(["compile", str(path), "--json"]) == 1
    (diagnostic,) = json.loads(capsys.readouterr().out)["diagnostics"]
    assert (diagnostic["code"], diagnostic["cell"], diagnostic["execution_count"], diagnostic["line"]) == (
        "undefined-name",
        0,
        4,
        1,
    )


def test_missing_output_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["compile", str(EXAMPLES / "fan_out.ipynb"), "-o", str(tmp_path / "no" / "x.yaml")]) == 1
    assert "does not exist" in capsys.readouterr().err
