"""Every components/NAME/component.yaml is what kfp compiles its component.py to: after an
edit, `python components/build.py` rewrites them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def build_module() -> Any:
    spec = importlib.util.spec_from_file_location("nb2pipe_components_build", HERE / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = build_module()


def test_every_component_folder_is_found():
    assert [folder.name for folder in BUILD.component_folders()] == ["drift", "explain", "retrain_gate"]


@pytest.mark.parametrize("folder", BUILD.component_folders(), ids=lambda folder: folder.name)
def test_component_yaml_is_up_to_date(folder: Path):
    assert BUILD.compiled_yaml(folder) == (folder / "component.yaml").read_text(encoding="utf-8"), (
        f"components/{folder.name}/component.yaml is stale: run python components/build.py"
    )
