"""Hostile input on every route: no answer is a 5xx, every refusal has API.md's error form,
nothing is written outside the root, and compiles and runs may come many at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, Fetch
from jupyterlab_nb2pipe.routes import ROUTES

#: route pattern -> (method, URL); runs/<id> is swept through its id
URLS = {
    "graph": ("POST", "nb2pipe/graph"),
    "compile": ("POST", "nb2pipe/compile"),
    "runs": ("POST", "nb2pipe/runs"),
    "runs/([^/]+)": ("GET", "nb2pipe/runs/{}"),
    "runs/([^/]+)/report": ("GET", "nb2pipe/runs/{}/report"),
    "runs/([^/]+)/([^/]+)/report\\.html": ("GET", "nb2pipe/runs/{}/x/report.html"),
    "submit": ("POST", "nb2pipe/submit"),
    "deploy": ("POST", "nb2pipe/deploy"),
}
POSTS = [url for method, url in URLS.values() if method == "POST"]

NESTED = b"[" * 200_000 + b"]" * 200_000
#: request bodies that are not what a route takes
BODIES: list[Any] = [
    NESTED,
    b'{"path": ' + NESTED + b"}",
    b"\xff\xfe\x00not utf-8",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"1" * 5000,
    b"",
    {"path": None},
    {"path": 3},
    {"path": {"a": 1}},
    {"path": True},
]
#: fields of the wrong type: 400 from the route that takes the field, ignored by the others
WRONG_FIELDS: list[dict[str, Any]] = [
    {"path": "sklearn_train.ipynb", "parameters": "n=1"},
    {"path": "sklearn_train.ipynb", "parameters": {"n": None}},
    {"path": "sklearn_train.ipynb", "notebook": []},
    {"path": "sklearn_train.ipynb", "notebook": "{}"},
    {"path": "sklearn_train.ipynb", "host": ["h"], "target": 7, "experiment": {}},
]
#: notebooks (files written into the root, then named by path) that are not what nb2pipe reads
HOSTILE_FILES: dict[str, bytes] = {
    "not_json.ipynb": b"this is not JSON",
    "not_utf8.ipynb": b"\xff\xfe\xfa",
    "array.ipynb": b"[]",
    "string.ipynb": b'"notebook"',
    "no_cells.ipynb": b'{"metadata": {}}',
    "cells_not_list.ipynb": b'{"cells": "x", "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "cells_not_objects.ipynb": b'{"cells": [1, "a", null], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "nested.ipynb": NESTED,
    "empty.ipynb": b"",
}


def _cells(*cells: tuple[Any, Any]) -> dict[str, Any]:
    """A notebook of code cells given as (source, tags)."""
    return {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": tags}, "source": source, "outputs": [], "execution_count": None}
            for source, tags in cells
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


#: notebooks whose content tries the analysis: odd sources, odd tags, odd metadata
HOSTILE_NOTEBOOKS: dict[str, Any] = {
    "syntax_error": _cells(("def (:", ["step:a"])),
    "deep_parens": _cells(("x = " + "(" * 5000 + "1" + ")" * 5000, ["step:a"])),
    "deep_expression": _cells(("x = " + "1 + " * 20000 + "1", ["step:a"])),
    "long_elif_chain": _cells(("if a:\n    pass\n" + "elif a:\n    pass\n" * 1000, ["step:a"])),
    "deep_blocks": _cells(("".join("    " * i + "if x:\n" for i in range(200)) + "    " * 200 + "pass", ["step:a"])),
    "nul_in_source": _cells(("x = 1\0", ["step:a"])),
    "source_list_of_numbers": _cells(([1, 2], ["step:a"])),
    "source_number": _cells((7, ["step:a"])),
    "tags_not_strings": _cells(("x = 1", [1, None, {"a": 1}])),
    "tags_string": _cells(("x = 1", "step:a")),
    "huge_tag": _cells(("x = 1", ["step:" + "a" * 100_000])),
    "unicode": _cells(("ü = '\U0001f600'\n", ["step:ü"]), ("print(ü)", ["step:b", "prev:ü"])),
    "parameters_odd": _cells(("a = 10**10000\nb = [" * 1 + "1" * 10 + "]", ["parameters"]), ("x = a", ["step:a"])),
    "metadata_odd": {**_cells(("x = 1", ["step:a"])), "metadata": {"nb2pipe": "not an object"}},
    "metadata_odd_fields": {
        **_cells(("x = 1", ["step:a"])),
        "metadata": {"nb2pipe": {"kfp_host": 3, "image": [], "mlflow_tracking_uri": {}, "packages": "x"}},
    },
    "cell_metadata_not_object": {
        "cells": [{"cell_type": "code", "metadata": [], "source": "x = 1", "outputs": []}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    },
}


@pytest.fixture
def no_run_processes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Runs that get past every check are recorded, not started: the fast tier starts no pipeline."""
    started: list[list[str]] = []

    class Finished:
        def poll(self) -> int:
            return 0

        def wait(self) -> int:
            return 0

    def spawn(command: list[str], **_: Any) -> Finished:
        started.append(command)
        return Finished()

    monkeypatch.setattr("nb2pipe.editor.runs.spawn", spawn)
    return started


def _assert_client_error_form(status: int, reply: Any, what: object) -> None:
    assert status < 500, (what, status, reply)
    if status >= 400:
        assert isinstance(reply, dict) and set(reply) == {"message", "diagnostics"}, (what, reply)
        assert isinstance(reply["message"], str) and isinstance(reply["diagnostics"], list)


def _hostile_paths(root: Path) -> list[str]:
    """Paths into a root prepared with loops, too-long names, a folder named like a notebook..."""
    (root / "loop.ipynb").symlink_to("loop.ipynb")
    (root / "ping").symlink_to("pong")
    (root / "pong").symlink_to("ping")
    (root / "dir.ipynb").mkdir()
    (root / "ünï cødé 😀.ipynb").write_text((EXAMPLES / "sklearn_train.ipynb").read_text(encoding="utf-8"))
    for name, data in HOSTILE_FILES.items():
        (root / name).write_bytes(data)
    for name, content in HOSTILE_NOTEBOOKS.items():
        (root / f"{name}.ipynb").write_text(json.dumps(content), encoding="utf-8")
    return [
        "loop.ipynb",
        "ping/x.ipynb",
        "pong",
        "a" * 300 + ".ipynb",
        "/".join(["a" * 250] * 40) + ".ipynb",
        "x" * 100_000 + ".ipynb",
        "x\0.ipynb",
        "\0",
        "dir.ipynb",
        "ünï cødé 😀.ipynb",
        "nope/ünï.ipynb",
        "\udcff.ipynb",
        " ",
        ".ipynb",
        "./sklearn_train.ipynb/",
        "sklearn_train.ipynb/x.ipynb",
        "~/x.ipynb",
        "$HOME/x.ipynb",
        "file:///etc/passwd.ipynb",
        *HOSTILE_FILES,
        *(f"{name}.ipynb" for name in HOSTILE_NOTEBOOKS),
    ]


def test_the_sweep_covers_every_route() -> None:
    assert sorted(URLS) == sorted(pattern for pattern, _ in ROUTES)


@pytest.mark.parametrize("url", POSTS)
async def test_hostile_bodies_are_4xx_in_the_error_form(root: Path, fetch: Fetch, no_run_processes, url: str):
    for body in BODIES:
        status, reply = await fetch("POST", url, body)
        _assert_client_error_form(status, reply, body if not isinstance(body, bytes) else body[:40])
        assert status == 400, (body if not isinstance(body, bytes) else body[:40], reply)
    for body in WRONG_FIELDS:
        status, reply = await fetch("POST", url, body)
        _assert_client_error_form(status, reply, body)


@pytest.mark.parametrize("url", POSTS)
async def test_hostile_paths_and_notebooks_are_never_5xx(root: Path, fetch: Fetch, no_run_processes, url: str):
    before = sorted(p.name for p in (root.parent / "outside").iterdir())
    for path in _hostile_paths(root):
        status, reply = await fetch("POST", url, {"path": path})
        _assert_client_error_form(status, reply, path[:80])
    assert sorted(p.name for p in (root.parent / "outside").iterdir()) == before


@pytest.mark.parametrize("name", sorted(HOSTILE_NOTEBOOKS))
async def test_hostile_unsaved_content_for_the_graph_is_never_5xx(root: Path, fetch: Fetch, name: str) -> None:
    status, reply = await fetch("POST", "nb2pipe/graph", {"path": "x.ipynb", "notebook": HOSTILE_NOTEBOOKS[name]})
    _assert_client_error_form(status, reply, name)


async def test_hostile_unsaved_content_of_the_wrong_shape_is_never_5xx(root: Path, fetch: Fetch) -> None:
    for content in ({}, {"cells": 1}, {"cells": [[]]}, {"cells": [{"cell_type": 3}]}, {"nbformat": "x"}):
        status, reply = await fetch("POST", "nb2pipe/graph", {"path": "x.ipynb", "notebook": content})
        _assert_client_error_form(status, reply, content)


async def test_hostile_run_ids_are_404(fetch: Fetch) -> None:
    for run_id in ("a" * 10_000, "%00", "%FF%FE", "%F0%9F%98%80", "..%00", "%5C..%5C", "%20"):
        status, reply = await fetch("GET", f"nb2pipe/runs/{run_id}")
        _assert_client_error_form(status, reply, run_id[:40])
        assert status in (400, 404), (run_id[:40], reply)  # 400: tornado refuses a URL that is not UTF-8


# -- symbolic links beside a notebook: nothing is written outside the root ---------------------


def _outside(root: Path) -> Path:
    return root.parent / "outside"


def _contents(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


async def test_a_link_at_the_temporary_name_is_never_written_through(
    root: Path, fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's temporary name is random; a link planted at the name it draws first is
    passed over (O_EXCL | O_NOFOLLOW), and the link and where it leads stay as they were."""
    planted = root / ".sklearn_train.pipeline.yaml.0000000000000000.tmp"
    planted.symlink_to(_outside(root) / "victim.txt")
    (_outside(root) / "victim.txt").write_text("keep", encoding="utf-8")
    drawn = iter(["0000000000000000", "1111111111111111"])
    monkeypatch.setattr("nb2pipe.files.secrets.token_hex", lambda _: next(drawn))
    before = _contents(_outside(root))
    status, reply = await fetch("POST", "nb2pipe/compile", {"path": "sklearn_train.ipynb"})
    assert status == 200, reply
    assert (root / "sklearn_train.pipeline.yaml").read_text(encoding="utf-8") == reply["yaml"]
    assert planted.is_symlink() and _contents(_outside(root)) == before
    assert not list(root.glob(".*1111*.tmp"))


async def test_a_link_at_the_output_name_leading_out_of_the_root_is_403(root: Path, fetch: Fetch) -> None:
    (root / "sklearn_train.pipeline.yaml").symlink_to(_outside(root) / "stolen.yaml")
    (root / "sub" / "sklearn_train.pipeline.yaml").symlink_to(_outside(root) / "x.ipynb")
    before = _contents(_outside(root))
    for path in ("sklearn_train.ipynb", "sub/sklearn_train.ipynb"):
        status, reply = await fetch("POST", "nb2pipe/compile", {"path": path})
        assert status == 403, reply
        assert set(reply) == {"message", "diagnostics"} and "outside" in reply["message"]
    assert _contents(_outside(root)) == before
    assert (root / "sklearn_train.pipeline.yaml").is_symlink()


async def test_a_link_at_the_output_name_inside_the_root_is_refused_not_followed(root: Path, fetch: Fetch) -> None:
    """A link the user made on purpose is neither written through nor replaced (see nb2pipe.files)."""
    kept = root / "kept.yaml"
    kept.write_text("mine", encoding="utf-8")
    (root / "sklearn_train.pipeline.yaml").symlink_to(kept)
    status, reply = await fetch("POST", "nb2pipe/compile", {"path": "sklearn_train.ipynb"})
    assert status == 422 and "symbolic link" in reply["message"], reply
    assert kept.read_text(encoding="utf-8") == "mine" and (root / "sklearn_train.pipeline.yaml").is_symlink()


@pytest.mark.parametrize("planted", [".nb2pipe", ".nb2pipe/logs", ".nb2pipe/runs", ".nb2pipe/mlflow.db"])
@pytest.mark.parametrize(
    ("url", "body"),
    [("nb2pipe/runs", {"path": "parameters_metrics.ipynb"}), ("nb2pipe/deploy", {"path": "lifecycle.ipynb"})],
    ids=["runs", "deploy"],
)
async def test_a_run_folder_leading_out_of_the_root_is_403(
    root: Path, fetch: Fetch, no_run_processes: list[list[str]], planted: str, url: str, body: dict[str, Any]
) -> None:
    target = _outside(root) / "workdir"
    target.mkdir()
    link = root / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    before = _contents(_outside(root))
    status, reply = await fetch("POST", url, body)
    assert status == 403, reply
    assert set(reply) == {"message", "diagnostics"} and "outside" in reply["message"]
    assert _contents(_outside(root)) == before and no_run_processes == []


async def test_a_run_folder_linked_inside_the_root_is_used(root: Path, fetch: Fetch, no_run_processes) -> None:
    (root / "elsewhere").mkdir()
    (root / ".nb2pipe").symlink_to(root / "elsewhere", target_is_directory=True)
    status, reply = await fetch("POST", "nb2pipe/runs", {"path": "parameters_metrics.ipynb"})
    assert status == 202, reply
    assert (root / "elsewhere" / "logs").is_dir() and len(no_run_processes) == 1
    assert str(root / ".nb2pipe") in no_run_processes[0]


# -- many at once -------------------------------------------------------------------------------


async def test_ten_concurrent_compiles_all_succeed_byte_identical(root: Path, fetch: Fetch) -> None:
    from nb2pipe.compiler import compile_with_environment

    names = [f"copy{i}.ipynb" for i in range(9)]
    for name in names:
        (root / name).write_bytes((root / "sklearn_train.ipynb").read_bytes())
    paths = ["parameters_metrics.ipynb", *names]
    replies = await asyncio.gather(*(fetch("POST", "nb2pipe/compile", {"path": path}) for path in paths))
    assert [status for status, _ in replies] == [200] * 10, replies
    for path, (_, reply) in zip(paths, replies, strict=True):
        notebook = root / path
        expected = compile_with_environment(notebook.read_text(encoding="utf-8"), str(notebook)).yaml
        assert (root / reply["output"]).read_bytes() == reply["yaml"].encode("utf-8") == expected.encode("utf-8")


async def test_ten_concurrent_runs_all_start(root: Path, fetch: Fetch, no_run_processes: list[list[str]]) -> None:
    """Starting a run compiles it first, in the server's thread pool (the run's own process is
    recorded here, not started: test_routes' slow test runs one for real)."""
    paths = ["parameters_metrics.ipynb"] * 4 + ["sklearn_train.ipynb", "sub/sklearn_train.ipynb", "lifecycle.ipynb"] * 2
    parameters = {"parameters_metrics.ipynb": {"n_samples": "300"}}
    replies = await asyncio.gather(
        *(fetch("POST", "nb2pipe/runs", {"path": path, "parameters": parameters.get(path, {})}) for path in paths)
    )
    assert [status for status, _ in replies] == [202] * 10, replies
    assert len({reply["run_id"] for _, reply in replies}) == 10 and len(no_run_processes) == 10
    for path, (_, reply) in zip(paths, replies, strict=True):
        status, view = await fetch("GET", f"nb2pipe/runs/{reply['run_id']}")
        assert status == 200 and view["notebook"] == path
