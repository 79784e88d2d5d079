"""Compiles from many threads at once (the Jupyter server's thread pool): kfp's DSL keeps the
pipeline being traced in a process global, so without nb2pipe's lock they collide."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nb2pipe.compiler import compile_notebook
from tests.support.nbtools import EXAMPLES

NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_every_example_compiled_from_its_own_thread_at_once_matches_a_sequential_compile(tmp_path: Path):
    assert len(NOTEBOOKS) >= 10
    copies = []
    for notebook in NOTEBOOKS:
        copy = tmp_path / notebook.name
        shutil.copyfile(notebook, copy)
        copies.append(copy)
    sequential = {path.name: compile_notebook(path).output.read_bytes() for path in copies}
    for written_before in tmp_path.glob("*.pipeline.yaml"):
        written_before.unlink()
    start = threading.Barrier(len(copies))

    def compile_together(path: Path) -> bytes:
        start.wait()
        return compile_notebook(path).output.read_bytes()

    with ThreadPoolExecutor(max_workers=len(copies)) as pool:
        written = dict(zip((path.name for path in copies), pool.map(compile_together, copies), strict=True))

    assert written == sequential
    assert sorted(p.name for p in tmp_path.glob("*.pipeline.yaml")) == sorted(f"{p.stem}.pipeline.yaml" for p in copies)
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def test_one_notebook_compiled_from_ten_threads_at_once_is_written_whole(tmp_path: Path):
    notebook = tmp_path / "fan_out.ipynb"
    shutil.copyfile(EXAMPLES / "fan_out.ipynb", notebook)
    expected = compile_notebook(notebook).compiled.yaml
    start = threading.Barrier(10)

    def compile_together(_: int) -> str:
        start.wait()
        return compile_notebook(notebook).compiled.yaml

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(compile_together, range(10))) == [expected] * 10
    assert (tmp_path / "fan_out.pipeline.yaml").read_bytes() == expected.encode("utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fan_out.ipynb", "fan_out.pipeline.yaml"]
