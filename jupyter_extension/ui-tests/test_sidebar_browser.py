"""The sidebar in a real browser: Debian's chromium driven by Playwright against a JupyterLab
started here on 127.0.0.1 (stopped by PID), with the extension as ``make test`` installs it.

A copy of ``examples/sklearn_train.ipynb`` loses the tags of its last two steps and its
pipeline name; the test puts them back through the panel, compiles, checks the DAG and the
YAML against the hand-tagged notebook's, runs the pipeline locally and waits for every step.
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
from nb2pipe.processes import free_port, http_ready, spawn, stop_group, wait_until

pytestmark = pytest.mark.slow  # JupyterLab in chromium

REPO = Path(__file__).resolve().parents[2]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

EXAMPLE = REPO / "examples" / "sklearn_train.ipynb"
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
