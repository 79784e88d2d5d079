"""Volumes: the volume:CLAIM:PATH tag, Kale's ``volumes`` metadata, the claims a pipeline
creates, the read-write-once warning, the DSL file, and what a local run does with mounts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nb2pipe.compiler import compile_source
from nb2pipe.errors import Nb2PipeError, Severity
from nb2pipe.ir import NewClaim, Tag, VolumeMount
from nb2pipe.notebook.tags import TagProblem, parse_tag
from nb2pipe.plan.volumes import volume_diagnostics
from nb2pipe.runners.volumes import LOCAL_CLAIM_NAME, check_local_mounts, claim_task_outputs, claim_tasks, mounts
from tests.support.kfpspec import dag, executor_config, parse_ir
from tests.support.nbtools import code, diagnostics_of, notebook, notebook_text, plan_of

# -- the tag --------------------------------------------------------------------------------


def test_volume_tag_names_a_claim_and_an_absolute_path():
    assert parse_tag("volume:training-data:/data") == Tag(
        "volume", ("training-data", "/data"), "volume:training-data:/data"
    )
    assert parse_tag("volume:cache.v2:/home/jovyan/cache") == Tag(
        "volume", ("cache.v2", "/home/jovyan/cache"), "volume:cache.v2:/home/jovyan/cache"
    )


@pytest.mark.parametrize(
    ("tag", "says"),
    [
        ("volume:Data:/data", "lowercase letters"),
        ("volume:-data:/data", "starting and ending with a letter or digit"),
        ("volume::/data", "claim name"),
        ("volume:data:data", "must be absolute"),
        ("volume:data:/", "cannot be mounted at '/'"),
        ("volume:data:/tmp", "under /tmp"),
        ("volume:data:/tmp/outputs", "under /tmp"),
        ("volume:data:/gcs/bucket", "under /gcs"),
        ("volume:data:/minio", "under /minio"),
        ("volume:data:/s3", "under /s3"),
        ("volume:data:/kfp-launcher", "under /kfp-launcher"),
        ("volume:data:/var/run/secrets/x", "under /var/run/secrets"),
        ("volume:data:/a/../b", "plainly"),
        ("volume:data:/data/", "plainly"),
        ("volume:data://data", "plainly"),
        ("volume:data", "wrong number of fields"),
        ("volume:data:/mnt/a:b", "wrong number of fields"),
    ],
)
def test_volume_tag_problems_say_what_is_wrong(tag: str, says: str):
    problem = parse_tag(tag)
    assert isinstance(problem, TagProblem) and problem.is_error
    assert says in problem.message
    assert problem.hint == "write it as 'volume:CLAIM:PATH'"


def test_a_misspelled_volume_tag_gets_did_you_mean():
    problem = parse_tag("volumes:data:/data")
    assert isinstance(problem, TagProblem) and problem.hint == "did you mean 'volume:data:/data'?"


# -- compiled mounts ------------------------------------------------------------------------


def _compiled(nb: dict[str, Any]) -> tuple[Any, Any, Any]:
    compiled = compile_source(notebook_text(nb), "nb.ipynb")
    spec, platform = parse_ir(compiled.yaml)
    return compiled, spec, platform


def _mounts(platform: Any, task: str) -> list[tuple[str, str]]:
    """(mount path, claim) of a task; a claim another task creates shows as ``<-TASK``."""
    found = []
    for mount in executor_config(platform, task).get("pvcMount", []):
        parameter = mount["pvcNameParameter"]
        claim = (
            parameter.get("runtimeValue", {}).get("constant") or "<-" + parameter["taskOutputParameter"]["producerTask"]
        )
        found.append((mount["mountPath"], claim))
    return found


def test_a_volume_tag_mounts_the_claim_in_that_step_only():
    nb = notebook(code("x = 1", "step:load", "volume:raw-data:/data"), code("y = x + 1", "step:train"))
    _, _, platform = _compiled(nb)
    assert _mounts(platform, "load") == [("/data", "raw-data")]
    assert _mounts(platform, "train") == []


def test_steps_defaults_mount_on_every_step_and_a_step_tag_replaces_the_default_at_its_path():
    nb = notebook(
        code("x = 1", "step:load"),
        code("y = x + 1", "step:train", "volume:other:/data", "volume:models:/models"),
        metadata={"nb2pipe": {"steps_defaults": ["volume:shared:/data", "label:team:ml"]}},
    )
    compiled, _, platform = _compiled(nb)
    assert _mounts(platform, "load") == [("/data", "shared")]
    assert _mounts(platform, "train") == [("/data", "other"), ("/models", "models")]
    assert compiled.plan.step("train").options.volumes == (
        VolumeMount("/data", "other"),
        VolumeMount("/models", "models"),
    )


def test_two_volume_tags_at_one_path_in_a_step_are_an_error():
    nb = notebook(code("x = 1", "step:load", "volume:a:/data", "volume:b:/data"), code("y = x", "step:use"))
    problems = [d for d in diagnostics_of(nb) if d.code == "volume-conflict"]  # compiling stops there
    assert [(d.code, d.severity) for d in problems] == [("volume-conflict", Severity.ERROR)]
    assert "'load' mounts 2 claims at /data: a, b" in problems[0].message
    assert problems[0].location.cell == 0


# -- Kale's volumes metadata ------------------------------------------------------------------

#: the shape Kale's JupyterLab panel writes (kale/examples/serving/sklearn/iris.ipynb), with
#: the types a cluster without Rok uses
KALE_WORKSPACE = {
    "annotations": [],
    "mount_point": "/home/jovyan",
    "name": "workspace-iris-bgsd4h5em",
    "size": 5,
    "size_type": "Gi",
    "snapshot": False,
    "type": "pvc",
}
KALE_SCRATCH = {
    "annotations": [{"key": "backup.example.com/skip", "value": "true"}, {"key": "", "value": ""}],
    "mount_point": "/home/jovyan/scratch",
    "name": "scratch",
    "size": 10,
    "size_type": "Gi",
    "snapshot": False,
    "type": "new_pvc",
}


def _kale(*volumes: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {
        "kubeflow_notebook": {
            "docker_image": "",
            "experiment_name": "iris",
            "katib_run": False,
            "pipeline_description": "",
            "pipeline_name": "iris",
            "volumes": list(volumes),
            **settings,
        }
    }


def _two_steps(metadata: dict[str, Any]) -> dict[str, Any]:
    return notebook(code("x = 1", "block:load"), code("y = x + 1", "block:train", "prev:load"), metadata=metadata)


def test_kale_pvc_volumes_are_mounted_on_every_step():
    compiled, _, platform = _compiled(_two_steps(_kale(KALE_WORKSPACE)))
    for step in ("load", "train"):
        assert _mounts(platform, step) == [("/home/jovyan", "workspace-iris-bgsd4h5em")]
    assert not [w for w in compiled.warnings if w.code == "unsupported-metadata"]


def test_kale_new_pvc_is_created_once_before_the_steps_and_mounted_in_each():
    _, spec, platform = _compiled(_two_steps(_kale(KALE_WORKSPACE, KALE_SCRATCH, storage_class_name="fast")))
    assert dag(spec) == {"createpvc": [], "load": ["createpvc"], "train": ["createpvc", "load"]}
    for step in ("load", "train"):
        assert _mounts(platform, step) == [
            ("/home/jovyan", "workspace-iris-bgsd4h5em"),
            ("/home/jovyan/scratch", "<-createpvc"),
        ]
    create = spec.root.dag.tasks["createpvc"]
    arguments = {name: value.runtime_value.constant for name, value in create.inputs.parameters.items()}
    assert {name: _plain(value) for name, value in arguments.items()} == {
        "pvc_name_suffix": "-scratch",
        "access_modes": ["ReadWriteMany"],  # Kale's default access mode
        "size": "10Gi",
        "storage_class_name": "fast",
        "annotations": {"backup.example.com/skip": "true"},
    }
    assert create.task_info.name == "create-volume-scratch"
    assert create.caching_options.enable_cache is False


def _plain(value: Any) -> Any:
    from google.protobuf import json_format

    return json_format.MessageToDict(value)


def test_kale_pv_binds_a_claim_to_the_named_persistent_volume():
    volume = {"name": "nfs-archive", "type": "pv", "mount_point": "/archive", "size": 100, "size_type": "Gi"}
    compiled, spec, platform = _compiled(_two_steps(_kale(volume, volume_access_mode="rom")))
    claim = compiled.plan.step("load").options.volumes[0].new
    assert claim == NewClaim("nfs-archive", "100Gi", ("ReadOnlyMany",), "", "nfs-archive")
    arguments = {
        n: _plain(v.runtime_value.constant) for n, v in spec.root.dag.tasks["createpvc"].inputs.parameters.items()
    }
    assert arguments["volume_name"] == "nfs-archive" and arguments["storage_class_name"] == ""
    assert _mounts(platform, "train") == [("/archive", "<-createpvc")]


def test_kale_clone_and_snapshot_need_rok_and_are_answered_with_warnings():
    clone = {**KALE_WORKSPACE, "type": "clone", "mount_point": "/home/jovyan/data", "name": "data-8lbdjmzdh"}
    snapshot = {**KALE_WORKSPACE, "snapshot": True}
    compiled, _, platform = _compiled(_two_steps(_kale(snapshot, clone)))
    messages = [w.message for w in compiled.warnings if w.code == "unsupported-metadata"]
    assert any("'clone' volume 'data-8lbdjmzdh'" in m and "Rok" in m for m in messages)
    assert any("Rok snapshot of volume 'workspace-iris-bgsd4h5em' is not taken" in m for m in messages)
    assert _mounts(platform, "load") == [("/home/jovyan", "workspace-iris-bgsd4h5em")]  # the clone is not mounted


def test_nb2pipe_volumes_metadata_is_read_like_kales():
    metadata = {"nb2pipe": {"volumes": [{"type": "pvc", "name": "features", "mount_point": "/features"}]}}
    _, _, platform = _compiled(_two_steps(metadata))
    assert _mounts(platform, "train") == [("/features", "features")]


@pytest.mark.parametrize(
    ("volume", "says"),
    [
        ({"type": "new_pvc", "name": "s", "mount_point": "/s"}, "volumes[0].size is required"),
        ({"type": "new_pvc", "name": "s", "mount_point": "/s", "size": 0, "size_type": "Gi"}, "storage quantity"),
        ({"type": "new_pvc", "name": "s", "mount_point": "/s", "size": 5, "size_type": "GB"}, "storage quantity"),
        ({"type": "pvcs", "name": "s", "mount_point": "/s"}, "volumes[0].type must be one of"),
        ({"type": "pvc", "name": "s", "mount_point": "s"}, "must be absolute"),
        ({"type": "pvc", "name": "S_1", "mount_point": "/s"}, "claim name"),
        ({"type": "pvc", "name": "s", "mount_point": "/tmp/s"}, "under /tmp"),
        ({"type": "pvc", "name": "s"}, "volumes[0].mount_point must be a string"),
        (
            {"type": "new_pvc", "name": "s", "mount_point": "/s", "size": 1, "volume_access_mode": "RWX"},
            "must be one of rom, rwo, rwm",
        ),
        ("pvc", "volumes[0] must be an object"),
        (
            {"type": "new_pvc", "name": "s", "mount_point": "/s", "size": 1, "storage_class_name": "Fast SSD"},
            "volumes[0].storage_class_name is not a storage class name",
        ),
        (
            {
                "type": "new_pvc",
                "name": "s",
                "mount_point": "/s",
                "size": 1,
                "annotations": [{"key": "a b", "value": "v"}],
            },
            "volumes[0].annotations holds a bad annotation",
        ),
    ],
)
def test_bad_kale_volumes_are_errors_naming_the_setting(volume: Any, says: str):
    problems = diagnostics_of(_two_steps(_kale(volume)))
    assert any(says in d.message and d.code == "invalid-metadata" for d in problems), [d.message for d in problems]


def test_two_kale_volumes_at_one_path_are_an_error():
    other = {**KALE_WORKSPACE, "name": "other"}
    problems = diagnostics_of(_two_steps(_kale(KALE_WORKSPACE, other)))
    assert any("volumes[1] mounts a second volume at '/home/jovyan'" in d.message for d in problems)


def test_two_created_kale_volumes_of_one_name_are_an_error():
    first = {"type": "new_pvc", "name": "scratch", "mount_point": "/a", "size": 1, "size_type": "Gi"}
    problems = diagnostics_of(_two_steps(_kale(first, {**first, "mount_point": "/b"})))
    assert any("volumes[1] creates a second claim named 'scratch'" in d.message for d in problems)


# -- the read-write-once warning ----------------------------------------------------------------


def _fan_out(*extra_tags: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """prepare -> (left, right) -> join: left and right can run at the same time."""
    return notebook(
        code("x = 1", "step:prepare", "volume:work:/work"),
        code("a = x + 1", "step:left", "volume:work:/work"),
        code("b = x + 2", "step:right", "volume:work:/work", *extra_tags),
        code("c = a + b", "step:join", "volume:work:/work"),
        metadata=metadata,
    )


def test_parallel_steps_sharing_a_claim_get_a_read_write_once_warning():
    problems = volume_diagnostics(plan_of(_fan_out()).steps)
    # and a compile reports it
    assert [d.code for d in plan_of(_fan_out()).warnings if d.code == "shared-volume"] == ["shared-volume"]
    assert [(d.code, d.severity) for d in problems] == [("shared-volume", Severity.WARNING)]
    message = problems[0].message
    assert "steps 'left' and 'right' can run at the same time" in message and "claim 'work'" in message
    assert "if it is ReadWriteOnce" in message and "one node" in message
    assert "after:left" in problems[0].hint and "ReadWriteMany" in problems[0].hint


def test_chained_steps_sharing_a_claim_get_no_warning():
    assert volume_diagnostics(plan_of(_fan_out("after:left")).steps) == []


def test_a_created_claim_warns_only_when_its_access_mode_is_read_write_once():
    def fan_out(mode: str) -> dict[str, Any]:
        volume = {**KALE_SCRATCH, "mount_point": "/scratch", "volume_access_mode": mode}
        return notebook(
            code("x = 1", "step:prepare"),
            code("a = x + 1", "step:left"),
            code("b = x + 2", "step:right"),
            metadata=_kale(volume),
        )

    assert volume_diagnostics(plan_of(fan_out("rwm")).steps) == []
    problems = volume_diagnostics(plan_of(fan_out("rwo")).steps)
    assert len(problems) == 1
    assert "the claim the pipeline creates as 'scratch'" in problems[0].message
    assert "it is ReadWriteOnce" in problems[0].message and "if it is" not in problems[0].message


# -- the DSL file ---------------------------------------------------------------------------------


def test_the_dsl_file_compiles_to_the_same_mounts_and_create_task(tmp_path: Path):
    nb = notebook(
        code("x = 1", "step:load", "volume:raw:/raw"),
        code("y = x + 1", "step:train"),
        metadata=_kale(KALE_WORKSPACE, KALE_SCRATCH),
    )
    compiled = compile_source(notebook_text(nb), "nb.ipynb", dsl_yaml_name="theirs.yaml")
    assert compiled.dsl is not None
    (tmp_path / "nb_dsl.py").write_text(compiled.dsl, encoding="utf-8")
    subprocess.run([sys.executable, "nb_dsl.py"], cwd=tmp_path, check=True, capture_output=True)
    ours_spec, ours = parse_ir(compiled.yaml)
    theirs_spec, theirs = parse_ir((tmp_path / "theirs.yaml").read_text())
    assert dag(theirs_spec) == dag(ours_spec)
    for task in ("load", "train"):
        assert _mounts(theirs, task) == _mounts(ours, task)
    assert _mounts(ours, "load") == [
        ("/home/jovyan", "workspace-iris-bgsd4h5em"),
        ("/home/jovyan/scratch", "<-createpvc"),
        ("/raw", "raw"),
    ]
    create = [spec.root.dag.tasks["createpvc"] for spec in (ours_spec, theirs_spec)]
    assert create[0].inputs == create[1].inputs


# -- local runs -----------------------------------------------------------------------------------


def _local_view(yaml_text: str) -> tuple[Any, list[Any]]:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    document, *platforms = yaml.safe_load_all(yaml_text)
    spec = json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
    return spec, platforms


def test_a_local_run_uses_a_mount_path_that_is_a_folder_here(shared_folder: Path):
    folder = shared_folder  # tmp_path is under /tmp, which a mount path may not be
    nb = notebook(code("x = 1", "step:load", f"volume:raw:{folder}"), code("y = x", "step:train"))
    spec, platforms = _local_view(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    assert mounts(spec, platforms) == {"load": [("claim 'raw'", str(folder))]}
    check_local_mounts(spec, platforms)  # the folder exists: nothing to refuse


def test_a_local_run_refuses_a_mount_path_this_machine_lacks(shared_folder: Path):
    missing = shared_folder / "no-such-folder"
    assert not missing.exists()
    nb = notebook(
        code("x = 1", "step:load"),
        code("y = x", "step:train"),
        metadata=_kale({**KALE_SCRATCH, "mount_point": str(missing)}),
    )
    spec, platforms = _local_view(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    assert claim_tasks(spec) == {"createpvc"}
    assert claim_task_outputs() == {"name": {"value": LOCAL_CLAIM_NAME}}
    with pytest.raises(Nb2PipeError) as caught:
        check_local_mounts(spec, platforms)
    text = str(caught.value)
    assert f"step 'load' mounts the claim createpvc creates at {missing}" in text
    assert f"step 'train' mounts the claim createpvc creates at {missing}" in text
    assert "nb2pipe submit" in text


@pytest.fixture
def shared_folder() -> Any:
    """A folder outside /tmp (a mount path may not be under it) that the test removes afterwards."""
    import shutil
    import uuid

    folder = Path.home() / ".cache" / "nb2pipe-tests" / f"volume-{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_local_run_hands_files_through_a_created_claims_folder(tmp_path: Path, shared_folder: Path):
    from nb2pipe.runners.local import run_notebook
    from nb2pipe.runners.run_folder import load_variables
    from tests.support.nbtools import write_notebook

    mount = str(shared_folder)
    nb = notebook(
        code(f"from pathlib import Path\nPath({mount!r}, 'big.txt').write_text('x' * 1000)\nwritten = 1", "step:write"),
        code(f"from pathlib import Path\nsize = len(Path({mount!r}, 'big.txt').read_text()) + written", "step:read"),
        metadata=_kale({**KALE_SCRATCH, "mount_point": mount}),
    )
    result = run_notebook(write_notebook(tmp_path, nb), workdir=tmp_path / "work", keep_variables=True)
    assert result.status == "succeeded", result.failures
    assert load_variables(result.run_dir)["size"] == 1001
    statuses = {step.step: step.status for step in result.steps}
    assert statuses == {"create-volume-scratch": "succeeded", "write": "succeeded", "read": "succeeded"}


def test_a_local_run_with_a_missing_mount_path_starts_no_step(tmp_path: Path, shared_folder: Path):
    from nb2pipe.runners.local import run_notebook
    from tests.support.nbtools import write_notebook

    missing = shared_folder / "no-such-folder"
    nb = notebook(code("x = 1", "step:load", f"volume:raw:{missing}"), code("y = x", "step:train"))
    with pytest.raises(Nb2PipeError, match="nb2pipe submit"):
        run_notebook(write_notebook(tmp_path, nb), workdir=tmp_path / "work")
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("step.log"))
