"""drift:/explain: tags and the monitoring pipeline: parsing, planning, diagnostics, and the
tasks they add to the compiled pipelines (no training, no MLflow here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nb2pipe.compiler import compile_source
from nb2pipe.errors import CompileError
from nb2pipe.ir import DriftOptions, Tag
from nb2pipe.notebook.tags import TagProblem, parse_tag
from tests.support.kfpspec import dag, executor_config, parse_ir
from tests.support.monitoring_notebooks import LOAD, TRAIN
from tests.support.nbtools import ROOT, code, codes, diagnostics_of, notebook, notebook_text, plan_of


def watched(*train_tags: str, evaluate_tags: tuple[str, ...] = (), metadata: dict | None = None) -> dict:
    return notebook(
        code(LOAD, "step:load"),
        code(TRAIN, "step:train", *train_tags),
        code("accuracy = model.score(X, y)", "step:evaluate", *evaluate_tags),
        code("accuracy", "metrics"),
        metadata=metadata,
    )


@pytest.mark.parametrize(
    ("text", "kind", "args"),
    [
        ("drift:X_new", "drift", ("X_new",)),
        ("drift:X_new:X_train", "drift", ("X_new", "X_train")),
        ("explain:anchor", "explain", ("anchor",)),
        ("explain:ig", "explain", ("ig",)),
    ],
)
def test_monitoring_tags_parse(text: str, kind: str, args: tuple[str, ...]):
    assert parse_tag(text) == Tag(kind, args, text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("drift:", "drift:X_new"),
        ("drift:1x", "drift:X_new"),
        ("drift:a:b:c", "drift:X_new"),
        ("explain:shap", "anchor, ig"),
        ("explian:ig", "did you mean 'explain:ig'"),
    ],
)
def test_bad_monitoring_tags_say_how_to_fix(text: str, needle: str):
    problem = parse_tag(text)
    assert isinstance(problem, TagProblem)
    assert needle in problem.message + " " + problem.hint


def test_drift_defaults_to_the_registered_models_training_data():
    plan = plan_of(watched("register:m"))
    assert plan.drift == ()
    plan = plan_of(watched("register:m", evaluate_tags=("drift:X_new",)))
    (task,) = plan.drift
    assert task.task == "drift-x-new"
    assert (task.current.name, task.current.source_step) == ("X_new", "load")
    assert (task.reference.name, task.reference.source_step) == ("X", "load")
    assert task.options == DriftOptions()
    # both compared values leave their step as datasets
    outputs = {o.name: o.kind for o in plan.step("load").outputs}
    assert outputs["X_new"] == "Dataset" and outputs["X"] == "Dataset"


def test_drift_with_a_named_reference_needs_no_registered_model():
    plan = plan_of(watched(evaluate_tags=("drift:X_new:X",)))
    (task,) = plan.drift
    assert task.reference.name == "X"


def test_drift_without_a_reference_says_how_to_name_one():
    found = diagnostics_of(watched(evaluate_tags=("drift:X_new",)))
    assert codes(found) == ["drift-reference"]
    assert "drift:X_new:X_train" in found[0].hint
    assert found[0].location.cell == 2


def test_drift_of_unknown_data_names_the_cell():
    found = diagnostics_of(watched("register:m", evaluate_tags=("drift:X_future",)))
    assert codes(found) == ["drift-data"]
    assert "X_future" in found[0].message and found[0].location.cell == 2


def test_drift_settings_come_from_notebook_metadata():
    settings = {"method": "ks", "p_value": 0.01, "correction": "fdr", "categorical": ["b"], "min_rows": 10}
    plan = plan_of(watched("register:m", evaluate_tags=("drift:X_new",), metadata={"nb2pipe": {"drift": settings}}))
    assert plan.drift[0].options == DriftOptions("ks", 0.01, "fdr", ("b",), 10)


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"method": "wasserstein"}, "nb2pipe.drift.method must be one of tabular, ks, chi2, mmd"),
        ({"p_value": 2}, "nb2pipe.drift.p_value must be above 0 and below 1, not 2"),
        ({"pvalue": 0.1}, "nb2pipe.drift has no setting 'pvalue'"),
        ({"min_rows": "many"}, 'nb2pipe.drift.min_rows must be a whole number, not "many"'),
    ],
)
def test_bad_drift_metadata_is_reported(settings: dict, needle: str):
    found = diagnostics_of(watched("register:m", metadata={"nb2pipe": {"drift": settings}}))
    assert codes(found) == ["invalid-metadata"]
    assert needle in found[0].message


def test_explain_tasks_follow_the_registered_model():
    plan = plan_of(watched("register:m", "explain:anchor", "explain:ig"))
    (item,) = plan.lifecycle
    assert item.explain_tasks == (("anchor", "explain-m-anchor"), ("ig", "explain-m-ig"))
    assert item.registration.explain == ("anchor", "ig")


def test_explain_without_register_is_an_error():
    assert codes(diagnostics_of(watched("explain:anchor"))) == ["missing-register"]


def test_explain_without_training_data_is_an_error():
    nb = notebook(
        code(LOAD, "step:load"),
        code("model = LogisticRegression()", "step:train", "register:m", "explain:anchor"),
    )
    assert "explain-data" in codes(diagnostics_of(nb))


def test_deployed_model_with_explain_serves_an_explainer():
    nb = notebook(
        code(LOAD, "step:load"),
        code(TRAIN, "step:train", "register:m", "explain:ig", "explain:anchor"),
        code("# serve", "deploy:m-api"),
    )
    (item,) = plan_of(nb).lifecycle
    assert item.deployment is not None and item.deployment.settings.explainer == "ig"


def test_compiled_pipeline_has_drift_and_explain_tasks():
    text = notebook_text(watched("register:m", "explain:anchor", evaluate_tags=("drift:X_new",)))
    compiled = compile_source(text, "nb.ipynb", dsl_yaml_name="nb.yaml")
    spec, _ = parse_ir(compiled.yaml)
    graph = dag(spec)
    assert graph["drift-x-new"] == ["load"]
    assert graph["explain-m-anchor"] == ["load", "train"]
    drift = spec.components["comp-drift-x-new"]
    assert set(drift.output_definitions.parameters) == {"is_drift"}
    assert set(drift.output_definitions.artifacts) == {"drift_metrics", "drift_report"}
    explain = spec.components["comp-explain-m-anchor"]
    assert set(explain.output_definitions.artifacts) == {"explanation", "explain_metrics"}
    # reports only: kfp may reuse them; registering never
    tasks = spec.root.dag.tasks
    assert tasks["drift-x-new"].caching_options.enable_cache
    assert not tasks["register-m"].caching_options.enable_cache
    assert compiled.dsl is not None and "OutputPath(bool)" in compiled.dsl


def test_dsl_file_compiles_to_the_same_graph(tmp_path):
    text = notebook_text(watched("register:m", "explain:anchor", evaluate_tags=("drift:X_new",)))
    compiled = compile_source(text, "nb.ipynb", dsl_yaml_name="from_dsl.yaml")
    assert compiled.dsl is not None
    (tmp_path / "pipeline_dsl.py").write_text(compiled.dsl, encoding="utf-8")
    subprocess.run([sys.executable, "pipeline_dsl.py"], cwd=tmp_path, check=True, capture_output=True)
    from_dsl, _ = parse_ir((tmp_path / "from_dsl.yaml").read_text(encoding="utf-8"))
    direct, _ = parse_ir(compiled.yaml)
    assert dag(from_dsl) == dag(direct)


def test_monitoring_pipeline_gates_training_on_drift():
    text = (ROOT / "examples" / "monitoring.ipynb").read_text(encoding="utf-8")
    compiled = compile_source(text, "monitoring.ipynb", monitoring=True)
    plan = compiled.plan
    assert plan.name == "monitoring-monitor"
    assert [p.name for p in plan.parameters][-2:] == ["payloads", "force_retrain"]
    assert plan.gate is not None and plan.gate.service == "breast-cancer"
    spec, _ = parse_ir(compiled.yaml)
    root = spec.root.dag.tasks
    assert sorted(root) == ["check-drift", "condition-1"]
    condition = root["condition-1"]
    assert "check-drift-retrain" in condition.trigger_policy.condition
    inner = spec.components["comp-condition-1"].dag.tasks
    # training, registering and redeploying run only on drift; explanations and the
    # notebook's own drift: checks belong to training runs
    assert sorted(inner) == ["deploy-breast-cancer", "evaluate", "load", "register-breast-cancer", "train"]
    assert not root["check-drift"].caching_options.enable_cache
    gate = spec.components["comp-check-drift"]
    assert set(gate.input_definitions.parameters) == {"payloads", "force_retrain"}
    assert set(gate.output_definitions.parameters) == {"retrain"}


def test_monitoring_pipeline_needs_one_registered_model():
    with pytest.raises(CompileError) as caught:
        compile_source(notebook_text(watched()), "nb.ipynb", monitoring=True)
    assert codes(caught.value.diagnostics) == ["no-registered-model"]
    reserved = notebook(code("payloads = 'x'", "parameters"), *watched("register:m")["cells"])
    with pytest.raises(CompileError) as caught:
        compile_source(notebook_text(reserved), "nb.ipynb", monitoring=True)
    assert codes(caught.value.diagnostics) == ["reserved-parameter"]


def test_compile_monitoring_from_the_command_line(tmp_path):
    source = ROOT / "examples" / "monitoring.ipynb"
    target = tmp_path / "monitoring.ipynb"
    target.write_bytes(source.read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "compile", str(target), "--monitoring"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    written = tmp_path / "monitoring.monitor.pipeline.yaml"
    spec, _ = parse_ir(written.read_text(encoding="utf-8"))
    assert spec.pipeline_info.name == "monitoring-monitor"


def test_the_gate_reads_the_blob_logger_of_the_deploy_with_its_steps_credentials():
    """deploy: logs to s3 (notebook metadata): the check-drift task is told where KServe writes the
    objects, and gets the step's secret: variables to read them."""
    nb = watched(
        "register:cancer",
        "deploy:cancer",
        "monitor",
        "secret:payload-logs:awsAccessKeyID:AWS_ACCESS_KEY_ID",
        metadata={"nb2pipe": {"deploy": {"logger_url": "s3://logs/cancer", "namespace": "models"}}},
    )
    compiled = compile_source(notebook_text(nb), "watched.ipynb", monitoring=True)
    gate = compiled.plan.gate
    assert gate is not None and (gate.logger_url, gate.namespace) == ("s3://logs/cancer", "models")
    assert "'logger_url': 's3://logs/cancer', 'namespace': 'models'" in compiled.yaml
    _, platform = parse_ir(compiled.yaml)
    secrets = executor_config(platform, "check-drift")["secretAsEnv"]
    assert [(s["secretName"], s["keyToEnv"]) for s in secrets] == [
        ("payload-logs", [{"secretKey": "awsAccessKeyID", "envVar": "AWS_ACCESS_KEY_ID"}])
    ]


def test_without_a_blob_logger_the_gate_config_is_as_before():
    nb = watched("register:cancer", "deploy:cancer", "monitor")
    compiled = compile_source(notebook_text(nb), "watched.ipynb", monitoring=True)
    assert compiled.plan.gate is not None and compiled.plan.gate.logger_url is None
    assert "logger_url" not in compiled.yaml
