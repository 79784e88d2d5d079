"""Private package indexes: ``--pip-index-url`` / ``--pip-trusted-host`` and
``metadata.nb2pipe.pip_index_urls`` / ``pip_trusted_hosts`` reach every component's pip
install, with the same packages and pins; bad or secret-bearing URLs are refused."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from nb2pipe.cli import main
from nb2pipe.compiler import compile_source
from nb2pipe.emit.kfp import install_script
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import PackageIndex
from tests.support.kfpspec import dag, parse_ir
from tests.support.nbtools import EXAMPLES, code, diagnostics_of, notebook, notebook_text, plan_of, write_notebook

INDEX = PackageIndex(
    ("https://pypi.corp.example/simple", "http://mirror.corp.example:8080/simple"), ("mirror.corp.example:8080",)
)
OPTIONS = (
    "--index-url https://pypi.corp.example/simple --extra-index-url http://mirror.corp.example:8080/simple "
    "--trusted-host mirror.corp.example:8080"
)


def install_scripts(yaml_text: str) -> dict[str, str]:
    """Executor -> the shell prelude that installs its packages (the ``sh -c`` script)."""
    spec = yaml.safe_load(yaml_text.split("\n---\n")[0])
    executors = spec["deploymentSpec"]["executors"]
    return {name: executor["container"]["command"][2] for name, executor in executors.items()}


def pip_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if "-m pip install" in line]


@pytest.mark.parametrize("example", ["lifecycle", "monitoring"])
def test_every_component_installs_from_the_index_with_the_same_packages(example: str):
    text = (EXAMPLES / f"{example}.ipynb").read_text(encoding="utf-8")
    plain = install_scripts(compile_source(text, f"{example}.ipynb").yaml)
    private = install_scripts(compile_source(text, f"{example}.ipynb", package_index=INDEX).yaml)
    assert set(private) == set(plain)
    # the steps and nb2pipe's own register/deploy/drift tasks
    assert any("register" in name for name in private) and len(private) > 3
    for name, script in private.items():
        lines = pip_lines(script)
        assert len(lines) == len(pip_lines(plain[name])) >= 1
        assert all(f" {OPTIONS} " in line for line in lines), name
        # only where the packages come from changes: kfp's version and the pins are the same
        assert script.replace(f" {OPTIONS}", "") == plain[name]
        assert "--index-url" not in plain[name]


def test_the_monitoring_pipeline_keeps_the_index():
    text = (EXAMPLES / "monitoring.ipynb").read_text(encoding="utf-8")
    compiled = compile_source(text, "monitoring.ipynb", package_index=INDEX, monitoring=True)
    scripts = install_scripts(compiled.yaml)
    assert scripts and all(OPTIONS in script for script in scripts.values())


def test_install_script_quotes_what_the_shell_would_split():
    index = PackageIndex(("https://pypi.corp.example/simple?a=1&b=2",))
    script = install_script(("pandas==2.2.3",), "2.17.0", index)
    done = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert all("--index-url 'https://pypi.corp.example/simple?a=1&b=2'" in line for line in pip_lines(script))


def metadata_notebook(settings: dict[str, Any]) -> dict[str, Any]:
    return notebook(
        code("import json\nx = json.dumps([1])", "step:first", "packages:requests==2.32.3"),
        code("y = x", "step:second"),
        metadata={"nb2pipe": settings},
    )


def test_metadata_sets_the_index_and_the_command_line_wins_list_by_list():
    nb = metadata_notebook(
        {"pip_index_urls": ["https://a.example/simple", "https://b.example/simple"], "pip_trusted_hosts": ["a.example"]}
    )
    assert plan_of(nb).package_index == PackageIndex(
        ("https://a.example/simple", "https://b.example/simple"), ("a.example",)
    )
    given = PackageIndex(("https://c.example/simple",))
    assert plan_of(nb, package_index=given).package_index == PackageIndex(("https://c.example/simple",), ("a.example",))
    hosts = PackageIndex((), ("c.example",))
    assert plan_of(nb, package_index=hosts).package_index.trusted_hosts == ("c.example",)
    assert plan_of(metadata_notebook({})).package_index == PackageIndex()


@pytest.mark.parametrize(
    ("settings", "says", "hint"),
    [
        ({"pip_index_urls": "https://a.example/simple"}, "must be a list of strings", "pypi.example.com"),
        ({"pip_index_urls": ["ftp://a.example/simple"]}, "is not an http:// or https:// URL", "https://"),
        ({"pip_index_urls": ["https://a.example/my simple"]}, "is not an http:// or https:// URL", "https://"),
        ({"pip_index_urls": ["a.example/simple"]}, "is not an http:// or https:// URL", "https://"),
        ({"pip_index_urls": ["https://bob:s3cr3t@a.example/simple"]}, "holds a credential", "PIP_INDEX_URL"),
        ({"pip_index_urls": ["http://a.example/simple"]}, "an http:// index must be a trusted host", "a.example"),
        ({"pip_trusted_hosts": ["https://a.example"]}, "is not a host name", "HOST:PORT"),
    ],
)
def test_bad_metadata_is_a_diagnostic_that_names_the_fix(settings: dict[str, Any], says: str, hint: str):
    found = diagnostics_of(metadata_notebook(settings))
    assert len(found) == 1, found
    assert found[0].code == "invalid-metadata"
    assert says in found[0].message and hint in (found[0].hint or "")
    assert "s3cr3t" not in found[0].format()


@pytest.mark.parametrize(
    "settings",
    [
        {"pip_index_urls": ["http://a.example:8080/simple"], "pip_trusted_hosts": ["a.example:8080"]},
        {"pip_index_urls": ["http://a.example:8080/simple"], "pip_trusted_hosts": ["a.example"]},
        {"pip_index_urls": ["http://127.0.0.1:9000/simple", "http://localhost/simple"]},
    ],
)
def test_a_trusted_or_loopback_http_index_is_accepted(settings: dict[str, Any]):
    assert plan_of(metadata_notebook(settings)).package_index.urls == tuple(settings["pip_index_urls"])


def test_a_caller_cannot_pass_a_credential_or_an_untrusted_http_index():
    text = notebook_text(metadata_notebook({}))
    with pytest.raises(Nb2PipeError, match="holds a credential") as caught:
        compile_source(text, "nb.ipynb", package_index=PackageIndex(("https://t0ken@a.example/simple",)))
    assert "t0ken" not in str(caught.value)
    with pytest.raises(Nb2PipeError, match=re.escape("add --pip-trusted-host a.example:81")):
        compile_source(text, "nb.ipynb", package_index=PackageIndex(("http://a.example:81/simple",)))


def nb2pipe(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nb2pipe", *arguments], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


def test_cli_flags_reach_the_yaml_and_the_dsl_file(tmp_path: Path):
    path = write_notebook(tmp_path, metadata_notebook({"pip_index_urls": ["https://ignored.example/simple"]}))
    flags = [f"--pip-index-url={url}" for url in INDEX.urls] + [f"--pip-trusted-host={INDEX.trusted_hosts[0]}"]
    done = nb2pipe("compile", str(path), "--dsl", str(tmp_path / "nb_dsl.py"), *flags, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ours = (tmp_path / "nb.pipeline.yaml").read_text()
    assert "ignored.example" not in ours
    assert all(OPTIONS in script for script in install_scripts(ours).values())
    # the DSL file, compiled by kfp as a user would: kfp's own pip install uses the same index
    scratch = tmp_path / "dsl"
    scratch.mkdir()
    subprocess.run([sys.executable, str(tmp_path / "nb_dsl.py")], cwd=scratch, check=True, capture_output=True)
    theirs = (scratch / "nb.pipeline.yaml").read_text()
    assert dag(parse_ir(theirs)[0]) == dag(parse_ir(ours)[0])
    for script in install_scripts(theirs).values():
        assert pip_lines(script) and all(OPTIONS in line for line in pip_lines(script)), script


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("--pip-index-url=https://bob:s3cr3t@a.example/simple", "PIP_INDEX_URL"),
        ("--pip-index-url=file:///srv/simple", "is not an http:// or https:// URL"),
        ("--pip-trusted-host=a.example/simple", "is not a host name"),
    ],
)
def test_a_bad_flag_is_a_one_line_error_that_never_echoes_a_credential(tmp_path: Path, flag: str, says: str):
    path = write_notebook(tmp_path, metadata_notebook({}))
    done = nb2pipe("compile", str(path), flag, cwd=tmp_path)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and says in errors[0], done.stderr
    assert "s3cr3t" not in done.stderr
    assert not (tmp_path / "nb.pipeline.yaml").exists()


def test_submit_uploads_a_pipeline_that_installs_from_the_index(kfp_server: Any):
    flags = [f"--pip-index-url={url}" for url in INDEX.urls] + [f"--pip-trusted-host={INDEX.trusted_hosts[0]}"]
    example = str(EXAMPLES / "parameters_metrics.ipynb")
    assert main(["submit", example, "--host", kfp_server.url, *flags]) == 0
    upload = next(r for r in kfp_server.requests if r.path.endswith("/pipelines/upload"))
    body = upload.body.decode()  # one multipart form field: the pipeline YAML
    uploaded = body[body.index("# PIPELINE DEFINITION") : body.rindex("\r\n--")]
    scripts = install_scripts(uploaded)
    assert scripts and all(OPTIONS in script for script in scripts.values())


# --- a real private index on 127.0.0.1 --------------------------------------------------------------

PROBE = "nb2pipe-index-probe"
PROBE_MODULE = "nb2pipe_index_probe"


def write_wheel(folder: Path) -> Path:
    """A pure-Python wheel, written by hand (building one would reach for setuptools)."""
    files = {
        f"{PROBE_MODULE}/__init__.py": b"ANSWER = 4242\n",
        f"{PROBE_MODULE}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: 1.0\n".encode(),
        f"{PROBE_MODULE}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for name, data in files.items()
    ]
    files[f"{PROBE_MODULE}-1.0.dist-info/RECORD"] = (
        "\n".join([*record, f"{PROBE_MODULE}-1.0.dist-info/RECORD,,"]) + "\n"
    ).encode()
    wheel = folder / f"{PROBE_MODULE}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


@pytest.fixture
def private_index(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A PEP 503 simple index of one wheel on 127.0.0.1: its URL, and the paths it was asked for."""
    root = tmp_path / "index"
    project = root / "simple" / PROBE
    project.mkdir(parents=True)
    wheel = write_wheel(root)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (root / "simple" / "index.html").write_text(f'<a href="{PROBE}/">{PROBE}</a>\n')
    (project / "index.html").write_text(f'<a href="../../{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    asked: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            asked.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple", asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("given_by", ["metadata", "flag"])
def test_nb2pipe_run_installs_a_steps_package_from_the_private_index(
    tmp_path: Path, private_index: tuple[str, list[str]], given_by: str
):
    url, asked = private_index
    assert importlib.util.find_spec(PROBE_MODULE) is None, "the test environment must lack the package"
    nb = notebook(
        code(f"import {PROBE_MODULE}\nanswer = {PROBE_MODULE}.ANSWER", "step:use", f"packages:{PROBE}==1.0"),
        code("answer", "metrics"),
        metadata={"nb2pipe": {"pip_index_urls": [url if given_by == "metadata" else "https://unused.example/simple"]}},
    )
    path = write_notebook(tmp_path, nb)
    flags = ["--pip-index-url", url] if given_by == "flag" else []
    site = tmp_path / "site"
    # pip installs into a folder of this test, not into the shared environment, and reads no user config
    env = {
        **os.environ,
        "PIP_TARGET": str(site),
        "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_NO_INPUT": "1",
    }
    done = nb2pipe("run", str(path), "--json", "--workdir", str(tmp_path / "runs"), *flags, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded"
    assert report["metrics"] == {"answer": 4242}
    assert (site / PROBE_MODULE / "__init__.py").is_file()
    assert f"/simple/{PROBE}/" in asked and f"/{PROBE_MODULE}-1.0-py3-none-any.whl" in asked
