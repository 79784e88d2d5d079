"""The tasks nb2pipe adds (register, deploy, explain, drift, the retrain gate) get the env: and
secret: variables of the step they come from, steps_defaults included, and nothing else of its
options: in the compiled IR, in the readable DSL file, and in a local run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.compiler import compile_source
from tests.support.kfpspec import container_env, executor_config, parse_ir
from tests.support.monitoring_notebooks import LOAD, TRAIN
from tests.support.nbtools import code, notebook, notebook_text, write_notebook

SECRET = "secret:mlflow-creds:token:MLFLOW_TRACKING_TOKEN"
ENDPOINT = "env:MLFLOW_S3_ENDPOINT_URL=http://minio:9000"
#: the secretAsEnv entry SECRET compiles to
TOKEN = ("mlflow-creds", [{"secretKey": "token", "envVar": "MLFLOW_TRACKING_TOKEN"}])
#: the train step's own sizing and placement, which its built-in tasks must not take
TRAIN_ONLY = ("memory:8Gi", "node:pool=train", "toleration:train:NoSchedule")
LIFECYCLE_TASKS = ("register-m", "deploy-m-api", "explain-m-anchor")


def _notebook(
    train_tags: tuple[str, ...] = (),
    serving_tags: tuple[str, ...] = (),
    evaluate_tags: tuple[str, ...] = (),
    defaults: list[str] | None = None,
) -> dict[str, Any]:
    cells = [code(LOAD, "step:load"), code(TRAIN, "step:train", "register:m", "explain:anchor", *train_tags)]
    cells.append(code("# serving", "deploy:m-api", *serving_tags))
    cells += [
        code("accuracy = model.score(X, y)", "step:evaluate", "drift:X_new", *evaluate_tags),
        code("accuracy", "metrics"),
    ]
    return notebook(*cells, metadata={"nb2pipe": {"steps_defaults": defaults}} if defaults else None)


def _secrets(platform: Any, task: str) -> list[tuple[str, Any]]:
    return [(s["secretName"], s["keyToEnv"]) for s in executor_config(platform, task).get("secretAsEnv", [])]


def _resources(spec: Any, task: str) -> dict[str, Any]:
    executor = spec.deployment_spec.fields["executors"].struct_value.fields[f"exec-{task}"].struct_value
    container = executor.fields["container"].struct_value.fields
    return dict(container["resources"].struct_value.fields) if "resources" in container else {}


def test_register_deploy_and_explain_get_the_training_steps_env_and_secret_only():
    compiled = compile_source(notebook_text(_notebook(train_tags=(SECRET, ENDPOINT, *TRAIN_ONLY))), "nb.ipynb")
    spec, platform = parse_ir(compiled.yaml)
    assert _resources(spec, "train") and executor_config(platform, "train")["nodeSelector"]
    for task in LIFECYCLE_TASKS:
        assert container_env(spec, task) == {"MLFLOW_S3_ENDPOINT_URL": "http://minio:9000"}, task
        # the secret, and not the step's memory, node selector or toleration
        assert executor_config(platform, task) == {"secretAsEnv": executor_config(platform, task)["secretAsEnv"]}
        assert _secrets(platform, task) == [TOKEN], task
        assert _resources(spec, task) == {}, task
    # the drift task comes from the evaluate step, which has none of them
    assert container_env(spec, "drift-x-new") == {} and executor_config(platform, "drift-x-new") == {}


def test_steps_defaults_reach_every_built_in_task_under_the_steps_own_tags():
    nb = _notebook(
        train_tags=("env:MLFLOW_S3_ENDPOINT_URL=http://train-minio:9000",),
        defaults=[SECRET, ENDPOINT, "env:AWS_DEFAULT_REGION=eu-west-1"],
    )
    spec, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    for task in LIFECYCLE_TASKS:
        assert container_env(spec, task) == {
            "AWS_DEFAULT_REGION": "eu-west-1",
            "MLFLOW_S3_ENDPOINT_URL": "http://train-minio:9000",
        }, task
        assert _secrets(platform, task) == [TOKEN], task
    assert container_env(spec, "drift-x-new") == {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000",
    }
    assert _secrets(platform, "drift-x-new") == [TOKEN]


def test_tasks_of_a_step_without_the_tags_get_none_of_another_steps():
    nb = _notebook(evaluate_tags=(SECRET, ENDPOINT))
    spec, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    for task in LIFECYCLE_TASKS:
        assert container_env(spec, task) == {} and executor_config(platform, task) == {}, task
    # drift: sits on the evaluate step, so its task has the evaluate step's
    assert container_env(spec, "drift-x-new") == {"MLFLOW_S3_ENDPOINT_URL": "http://minio:9000"}
    assert _secrets(platform, "drift-x-new") == [TOKEN]


def test_env_and_secret_on_the_deploy_cell_are_its_steps_and_reach_its_tasks():
    spec, platform = parse_ir(compile_source(notebook_text(_notebook(serving_tags=(SECRET, ENDPOINT))), "x").yaml)
    for task in ("train", *LIFECYCLE_TASKS):
        assert container_env(spec, task) == {"MLFLOW_S3_ENDPOINT_URL": "http://minio:9000"}, task
        assert _secrets(platform, task) == [TOKEN], task


def test_the_retrain_gate_gets_its_steps_env_as_well_as_its_secrets():
    nb = _notebook(train_tags=("monitor", SECRET, ENDPOINT))
    spec, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb", monitoring=True).yaml)
    assert container_env(spec, "check-drift") == {"MLFLOW_S3_ENDPOINT_URL": "http://minio:9000"}
    assert _secrets(platform, "check-drift") == [TOKEN]


def test_the_dsl_file_gives_the_built_in_tasks_the_same_env_and_secrets(tmp_path: Path):
    nb = _notebook(train_tags=(SECRET, *TRAIN_ONLY), evaluate_tags=(ENDPOINT,), defaults=["env:STAGE=ci"])
    compiled = compile_source(notebook_text(nb), "nb.ipynb", dsl_yaml_name="from_dsl.yaml")
    assert compiled.dsl is not None
    (tmp_path / "pipeline_dsl.py").write_text(compiled.dsl, encoding="utf-8")
    subprocess.run([sys.executable, "pipeline_dsl.py"], cwd=tmp_path, check=True, capture_output=True)
    ours_spec, ours = parse_ir(compiled.yaml)
    theirs_spec, theirs = parse_ir((tmp_path / "from_dsl.yaml").read_text(encoding="utf-8"))
    for task in (*LIFECYCLE_TASKS, "drift-x-new"):
        assert executor_config(theirs, task) == executor_config(ours, task), task
        assert container_env(theirs_spec, task) == container_env(ours_spec, task), task
    assert _secrets(ours, "register-m") == [TOKEN] and container_env(ours_spec, "drift-x-new") == {
        "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000",
        "STAGE": "ci",
    }


@pytest.mark.slow
def test_a_local_register_task_sees_its_steps_env_values(tmp_path: Path):
    """kfp.local gives a built-in task its container's env, as it gives a step; ``secret:`` is a
    cluster's (locally, steps and their tasks alike run in the runner's own environment)."""
    from mlflow import MlflowClient

    from nb2pipe.runners.local import run_notebook

    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    nb = notebook(
        code(LOAD, "step:load"), code(TRAIN, "step:train", "register:m", f"env:MLFLOW_TRACKING_URI={elsewhere}")
    )
    result = run_notebook(write_notebook(tmp_path, nb), workdir=tmp_path / "work")
    assert result.status == "succeeded", result.failures
    # the register task logged where the step's env: said, not in the run's own store
    assert [m.name for m in MlflowClient(elsewhere, registry_uri=elsewhere).search_registered_models()] == ["m"]
    assert not (tmp_path / "work" / "mlflow.db").exists()
