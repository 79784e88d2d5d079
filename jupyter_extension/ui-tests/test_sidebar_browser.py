"""The sidebar in a real browser: Debian's chromium driven by Playwright against a JupyterLab
started here on 127.0.0.1 (stopped by PID), with the extension as ``make test`` installs it.

A copy of ``examples/sklearn_train.ipynb`` loses the tags of its last two steps and its
pipeline name; the test puts them back through the panel, compiles, checks the DAG and the
YAML against the hand-tagged notebook's, runs the pipeline locally and waits for every step.
A copy of ``examples/parameters_metrics.ipynb`` checks the other views: cell badges, the
full-size graph, a run with a parameter from the form, its report tab, and a failing copy's
failure on its cell.
Screenshots land in ``ui-tests/output/``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nb2pipe.compiler import compile_notebook
from nb2pipe.editor.graph import describe_source
from nb2pipe.processes import free_port, http_ready, spawn, stop_group, wait_until

pytestmark = pytest.mark.slow  # JupyterLab in chromium

REPO = Path(__file__).resolve().parents[2]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

EXAMPLE = REPO / "examples" / "sklearn_train.ipynb"
#: the views' notebook: pipeline parameters, two steps, metrics
VIEWS_EXAMPLE = REPO / "examples" / "parameters_metrics.ipynb"
#: the cell of VIEWS_EXAMPLE's step ``fit`` that the failing copy breaks, and the line it raises at
BROKEN_CELL, BROKEN_LINE = 4, 2
OUTPUT = Path(__file__).resolve().parent / "output"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PIPELINE_NAME = "breast-cancer-forest"
#: seconds JupyterLab has to exit after SIGTERM before its process group gets SIGKILL
STOP_GRACE_S = 20.0
#: cell index -> the tags the panel writes (the example's own tags for those cells)
PANEL_CELLS = {5: ["step:train", "cpu:1", "memory:1Gi"], 6: ["step:evaluate"]}


@dataclass
class Lab:
    url: str
    token: str
    root: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab on 127.0.0.1 whose root holds the untagged copy of the example."""
    root = tmp_path_factory.mktemp("lab-root")
    home = tmp_path_factory.mktemp("lab-home")
    notebook = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    for index, tags in PANEL_CELLS.items():
        assert notebook["cells"][index]["metadata"].pop("tags") == tags, "the example's tags changed"
    (root / EXAMPLE.name).write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    port, token = free_port(), secrets.token_hex(16)
    environment = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
    ]
    log = home / "jupyterlab.log"
    process = spawn(command, log=log, env=environment, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ready(f"{url}/api/status?token={token}"), process, 90, "JupyterLab", log=log, log_lines=200)
        yield Lab(url, token, root)
    finally:
        stop_group(process, STOP_GRACE_S)
        endpoints = root / ".nb2pipe"
        if endpoints.exists():
            subprocess.run(
                [sys.executable, "-m", "nb2pipe", "endpoints", "--workdir", str(endpoints), "--stop-all"],
                capture_output=True,
                check=False,
            )


@pytest.fixture(scope="module")
def page(lab: Lab) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            page.screenshot(path=str(OUTPUT / "last.png"))
            context.close()
            browser.close()


def by_id(page: Page, name: str) -> Locator:
    return page.locator(f'[data-nb2pipe-id="{name}"]')


def _reference_yaml(tmp_path: Path) -> str:
    """The hand-tagged example, named as the panel names it, compiled by the CLI's library call."""
    notebook = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    notebook["metadata"].setdefault("nb2pipe", {})["pipeline_name"] = PIPELINE_NAME
    hand = tmp_path / "hand" / EXAMPLE.name
    hand.parent.mkdir()
    hand.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return compile_notebook(hand).output.read_text(encoding="utf-8")


def test_panel_tags_compile_and_run(lab: Lab, page: Page, tmp_path: Path) -> None:
    page.goto(f"{lab.url}/lab/tree/{EXAMPLE.name}?token={lab.token}&reset")
    page.locator(".jp-Notebook .jp-Cell").nth(7).wait_for()
    page.locator('.jp-SideBar [title="nb2pipe"]').first.click()
    panel = by_id(page, "panel")
    panel.wait_for()

    by_id(page, "setting-pipeline_name").fill(PIPELINE_NAME)
    by_id(page, "setting-pipeline_name").press("Tab")

    cells = page.locator(".jp-Notebook .jp-Cell")
    # First a mistake: evaluate after a step that does not exist shows on its cell.
    cells.nth(6).locator(".jp-InputPrompt").click()
    by_id(page, "field-step").fill("evaluate")
    by_id(page, "field-after").fill("trainer")
    by_id(page, "apply-tags").click()
    mistake = by_id(page, "diagnostics").locator('[data-cell="6"]')
    mistake.first.wait_for()
    assert "trainer" in mistake.first.inner_text()
    page.screenshot(path=str(OUTPUT / "diagnostic.png"))
    cells.nth(0).click()
    mistake.first.click()
    assert "jp-mod-active" in (cells.nth(6).get_attribute("class") or "")

    by_id(page, "field-after").fill("")
    by_id(page, "apply-tags").click()
    cells.nth(5).locator(".jp-InputPrompt").click()
    by_id(page, "field-step").fill("train")
    by_id(page, "field-cpu").fill("1")
    by_id(page, "field-memory").fill("1Gi")
    by_id(page, "apply-tags").click()
    tags = by_id(page, "cell-tags").locator("code")
    page.wait_for_function(
        "n => document.querySelectorAll('[data-nb2pipe-id=\"cell-tags\"] code').length === n",
        arg=len(PANEL_CELLS[5]),
    )
    assert sorted(tags.all_inner_texts()) == sorted(PANEL_CELLS[5])

    by_id(page, "compile").click()
    yaml_view = by_id(page, "yaml")
    page.wait_for_function("() => (document.querySelector('[data-nb2pipe-id=\"yaml\"]')?.textContent || '').length > 0")
    dag = by_id(page, "dag")
    for step in ("load_data", "preprocess", "train", "evaluate"):
        dag.locator(f'[data-node="{step}"]').wait_for()
    assert (dag.locator('[data-edge="train->evaluate"]').text_content() or "").strip()
    assert by_id(page, "diagnostics").locator("[data-cell]").count() == 0
    panel.screenshot(path=str(OUTPUT / "panel-dag.png"))

    written = lab.root / yaml_view.get_attribute("data-output")
    assert written == lab.root / "sklearn_train.pipeline.yaml"
    assert written.read_text(encoding="utf-8") == _reference_yaml(tmp_path)
    assert yaml_view.inner_text().strip() == written.read_text(encoding="utf-8").strip()
    saved = json.loads((lab.root / EXAMPLE.name).read_text(encoding="utf-8"))
    for index, expected in PANEL_CELLS.items():
        assert sorted(saved["cells"][index]["metadata"]["tags"]) == sorted(expected)
    assert saved["metadata"]["nb2pipe"]["pipeline_name"] == PIPELINE_NAME

    by_id(page, "run").click()
    status = by_id(page, "run-status")
    page.wait_for_function(
        "() => ['succeeded', 'failed', 'interrupted'].includes("
        "document.querySelector('[data-nb2pipe-id=\"run-status\"]')?.getAttribute('data-status'))",
        timeout=240_000,
    )
    panel.screenshot(path=str(OUTPUT / "panel-run.png"))
    assert status.get_attribute("data-status") == "succeeded", status.inner_text()
    rows = status.locator("[data-step]")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.step)")) == sorted(
        ["load_data", "preprocess", "train", "evaluate"]
    )
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)")) == {"succeeded"}


def test_panel_submits_to_kubeflow(lab: Lab, page: Page) -> None:
    """Submit with the KFP host from the panel's settings: the recording KFP API on loopback
    gets the pipeline and the run, and the panel links to the run in the Kubeflow UI."""
    from tests.support.fake_kfp import FakeKfp
    from tests.support.loopback import LoopbackServer

    kfp = FakeKfp()
    with LoopbackServer(kfp) as server:
        by_id(page, "setting-kfp_host").fill(server.url)
        by_id(page, "setting-kfp_host").press("Tab")
        by_id(page, "submit").click()
        link = by_id(page, "run-link")
        link.wait_for()
        by_id(page, "panel").screenshot(path=str(OUTPUT / "panel-submit.png"))
    assert [p["display_name"] for p in kfp.pipelines.values()] == [PIPELINE_NAME]
    (run,) = kfp.runs
    assert link.get_attribute("href") == f"{server.url}/#/runs/details/{run['run_id']}"
    saved = json.loads((lab.root / EXAMPLE.name).read_text(encoding="utf-8"))
    assert saved["metadata"]["nb2pipe"]["kfp_host"] == server.url


def _open_notebook(page: Page, lab: Lab, name: str, cells: int) -> None:
    """Open ``name`` (``cells`` cells) in a fresh workspace and show the nb2pipe panel."""
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}&reset")
    page.locator(".jp-Notebook .jp-Cell").nth(cells - 1).wait_for()
    if not by_id(page, "panel").is_visible():
        page.locator('.jp-SideBar [title="nb2pipe"]').first.click()
    by_id(page, "panel").wait_for()


def _run_to_end(page: Page) -> Locator:
    """Press ``run`` and wait for the run it starts (a run id not shown before) to end."""
    status = by_id(page, "run-status")
    before = status.get_attribute("data-run") if status.count() else None
    by_id(page, "run").click()
    page.wait_for_function(
        "before => { const s = document.querySelector('[data-nb2pipe-id=\"run-status\"]');"
        " return !!s && s.getAttribute('data-run') !== before && s.getAttribute('data-done') === 'true'"
        " && ['succeeded', 'failed', 'interrupted'].includes(s.getAttribute('data-status')); }",
        arg=before,
        timeout=240_000,
    )
    return status


def _is_active(cell: Locator) -> bool:
    return "jp-mod-active" in (cell.get_attribute("class") or "")


def test_panel_views_badges_graph_parameters_report_failure(lab: Lab, page: Page) -> None:
    """The panel's views on a copy of the parameters example: each code cell's badge, the
    full-size graph (fit, a node's click selects its cell), a run with a parameter from the
    form, its report in a sandboxed tab; then a copy broken at a known line fails there."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    text = VIEWS_EXAMPLE.read_text(encoding="utf-8")
    name = "views.ipynb"
    (lab.root / name).write_text(text, encoding="utf-8")
    graph = describe_source(text, name)
    code_cells = [place.cell for place in graph.cells]
    cell_count = len(json.loads(text)["cells"])
    _open_notebook(page, lab, name, cell_count)
    cells = page.locator(".jp-Notebook .jp-Cell")

    # 1. every code cell's badge says its step or role, as the editor's graph does
    page.wait_for_function(
        "n => document.querySelectorAll('.jp-Notebook .jp-Cell > .nb2pipe-cell-badge').length === n",
        arg=len(code_cells),
        timeout=30_000,
    )
    for place in graph.cells:
        badge = cells.nth(place.cell).locator(":scope > .nb2pipe-cell-badge")
        assert badge.get_attribute("data-nb2pipe-step") == (place.step or ""), place
        assert badge.get_attribute("data-nb2pipe-role") == place.role, place
    assert {place.role for place in graph.cells} >= {"imports", "parameters", "step", "metrics"}
    page.screenshot(path=str(OUTPUT / "views-badges.png"))

    # 2. the full-size graph: every node, fit, a click on a node selects its first cell
    by_id(page, "enlarge-graph").click()
    view_svg = by_id(page, "graph-view-svg")
    view_svg.wait_for()
    nodes = [node.id for node in graph.nodes]
    for node in nodes:
        view_svg.locator(f'[data-node="{node}"]').first.wait_for()
    shown = view_svg.locator("[data-node]").evaluate_all("nodes => nodes.map(n => n.dataset.node)")
    assert sorted(set(shown)) == sorted(nodes)
    by_id(page, "graph-fit").click()
    page.screenshot(path=str(OUTPUT / "views-graph.png"))
    fit = next(node for node in graph.nodes if node.id == "fit")
    view_svg.locator('[data-node="fit"]').first.click()
    expect_active = cells.nth(fit.cells[0])
    page.wait_for_function(
        "i => document.querySelectorAll('.jp-Notebook .jp-Cell')[i]?.classList.contains('jp-mod-active')",
        arg=fit.cells[0],
        timeout=10_000,
    )
    assert _is_active(expect_active)
    assert errors == []

    # 3. a run with a parameter from the form uses its value
    field = by_id(page, "parameter-n_samples")
    assert field.get_attribute("data-type") == "int"
    field.fill("123")
    field.press("Tab")
    assert "nb2pipe-invalid" not in (field.get_attribute("class") or "")
    status = _run_to_end(page)
    by_id(page, "panel").screenshot(path=str(OUTPUT / "views-run-parameters.png"))
    assert status.get_attribute("data-status") == "succeeded", status.inner_text()
    run_id = status.get_attribute("data-run")
    assert run_id
    record = json.loads((lab.root / ".nb2pipe" / "runs" / run_id / "run.json").read_text(encoding="utf-8"))
    # the form sends only the values changed; the others keep the notebook's defaults
    assert record["parameters"] == {"n_samples": 123}

    # 4. the report in a main-area tab: a sandboxed iframe on the report route
    by_id(page, "open-report").click()
    frame = page.locator(".jp-MainAreaWidget iframe.nb2pipe-report-frame")
    frame.first.wait_for()
    assert frame.count() == 1
    assert frame.get_attribute("sandbox") == ""
    src = frame.get_attribute("src") or ""
    assert f"/nb2pipe/runs/{run_id}/report" in src, src
    answer = page.request.get(
        src if src.startswith("http") else f"{lab.url}{src}", headers={"Authorization": f"token {lab.token}"}
    )
    assert answer.status == 200, answer.text()
    assert answer.headers["content-type"].startswith("text/html")
    page.screenshot(path=str(OUTPUT / "views-report.png"))

    # 5. a copy broken at a known cell and line: the run fails there and marks the cell
    notebook = json.loads(text)
    broken_source = "".join(notebook["cells"][BROKEN_CELL]["source"]).splitlines()
    broken_source.insert(BROKEN_LINE - 1, 'raise ValueError("broken on purpose")')
    notebook["cells"][BROKEN_CELL]["source"] = "\n".join(broken_source)
    broken = "views_broken.ipynb"
    (lab.root / broken).write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    _open_notebook(page, lab, broken, cell_count)
    status = _run_to_end(page)
    assert status.get_attribute("data-status") == "failed", status.inner_text()
    failure = by_id(page, "run-failure")
    failure.wait_for()
    assert failure.get_attribute("data-step") == "fit"
    assert failure.get_attribute("data-cell") == str(BROKEN_CELL)
    assert f"line {BROKEN_LINE}" in failure.inner_text(), failure.inner_text()
    page.wait_for_function(
        "i => document.querySelectorAll('.jp-Notebook .jp-Cell')[i]?.classList.contains('nb2pipe-cell-failed')",
        arg=BROKEN_CELL,
        timeout=10_000,
    )
    assert "broken on purpose" in cells.nth(BROKEN_CELL).locator(".nb2pipe-cell-run-failure").inner_text()
    page.screenshot(path=str(OUTPUT / "views-failure.png"))
    cells.nth(0).locator(".jp-InputPrompt").click()
    assert not _is_active(cells.nth(BROKEN_CELL))
    failure.locator('[data-nb2pipe-id="go-to-cell"]').click()
    page.wait_for_function(
        "i => document.querySelectorAll('.jp-Notebook .jp-Cell')[i]?.classList.contains('jp-mod-active')",
        arg=BROKEN_CELL,
        timeout=10_000,
    )
    assert errors == []
