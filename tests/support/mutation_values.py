"""What notebook mutations draw from (see tests/support/mutants.py, which applies them).

The fixed vocabularies: odd tag values, good values per tag kind, foreign tags, code
snippets by family, odd parameter and metrics lines, odd notebook metadata and notebook
paths. Then the helpers that draw from them and from the notebook being mutated: its cells,
tags, sources and assigned names, read so that a shape broken by an earlier mutation does not
stop a later one; a random tag of any kind and spelling; a typo; a cell to mutate; a row of a
weighted table; compile options. Every draw
goes through the ``random.Random`` passed in, so a mutant is rebuilt from its seed alone.
"""

from __future__ import annotations

import ast
import random
from typing import Any

from nb2pipe.notebook.tags import SPECS

# --- what mutations draw from ------------------------------------------------------------------
# fmt: off

#: odd values for any tag field: empty, whitespace, huge numbers, unicode, separators, control characters
WEIRD_VALUES: tuple[str, ...] = (
    "", " ", ":", "::", "99999999999999999999", "-1", "0", "1e400", "nan", "None", "名前", "é", "\u200b",
    "\t", "x" * 300, "a:b:c:d", "../x", "$(x)", "'", '"', "\\", "\n", "\ud800", "\x00", "1.5", " train ",
)

#: plausible values per tag kind (from tags.py SPECS), good ones and near misses
KIND_VALUES: dict[str, tuple[str, ...]] = {
    "step": ("train", "a", "A-b_c", "_x", "x" * 63, "x" * 300, "1abc", "stép", "with space", "a.b", "for",
             "None", "class", "nb2pipe_report", "pipeline", "root", "exit-handler", "comp-a", "a_b", "a-b", "A",
             "dsl", "kfp", "compiler", "kubernetes", "Input", "Output", "Dataset", "Model", "List", "json", "os"),
    "after": ("train", "nowhere", "", "a", "a_b"),
    "gpu": ("1", "2:nvidia.com/gpu", "1:amd.com/gpu", "0", "1:", "99999999999999999999", "1:a:b"),
    "cpu": ("2", "0.5", "500m", "1.", "m", ".5", "99999999999999999999", "2.5m"),
    "memory": ("512Mi", "4Gi", "1000000", "Mi", "0", "1.5Gi", "99999999999999999999Ei"),
    "limit": ("cpu:2", "memory:8Gi", "nvidia.com/gpu:1", "disk:1", "memory:", "nvidia.com/gpu:99999999999999999999"),
    "image": ("python:3.12-slim", "registry:5000/a/b:tag@sha256:abc", "x", "UPPER/Case", "a b", ""),
    "packages": ("xgboost==2.1;rich", "pandas>=2,<3", "numpy;;", "git+https://x/y.git", "-e .", "a b",
                 "requests[socks]>=2", ";", "numpy==", "名前"),
    "cache": ("on", "off", "enabled", "disabled", "true"),
    "retry": ("0", "3", "99999999999999999999", "-1", "1.5"),
    "timeout": ("1", "3600", "99999999999999999999", "0"),
    "annotation": ("k:v", "team.example.com/owner:ml", "k:", "k:v:w", ":v", "名前:値"),
    "label": ("team:vision", "k:", "k:v:w", "app:kale", "Key:Value!", ":"),
    "secret": ("db:password:DB_PASSWORD", "a:b:c", "a:b:1ENV", "a:b:c d", "a:b", "a:b:c:d"),
    "report": ("enabled", "disabled", "on"),
    "register": ("churn", "churn:model", "Churn_Model:clf", "m:1x", "a/b", "m:"),
    "promote": ("accuracy>=", "rmse<=", "acc>", "x>=y", ">=", "名前>="),
    "deploy": ("cancer", "svc-1", "a" * 70, "Svc", "-a", "a"),
    "replicas": ("0-3", "1", "3-1", "0", "0-0", "1-99999999999999999999", "-"),
    "scale": ("concurrency=10", "rps=1", "cpu=0", "memory=80", "rps=99999999999999999999", "gpu=1"),
    "canary": ("0", "20", "100", "101", "99999999999999999999"),
    "drift": ("X_test", "X_new:X_train", "a:b:c", "1x", "X_test:"),
    "explain": ("anchor", "ig", "shap"),
    "toleration": ("k=v:NoSchedule", "dedicated:NoExecute", "k:noschedule", "k=v", "=v:NoSchedule", "k=v:"),
    "node": ("pool=train", "cloud.google.com/gke-nodepool=gpu", "k=", "=v", "k", "Bad Key=v"),
    "affinity": ("zone=a|b", "zone!=a", "disk", "!disk", "cores>4", "zone=", "=a"),
    "prefer-affinity": ("disk=ssd:50", "zone=a|b", "disk=ssd:0", "disk=ssd:101", "disk:x"),
    "shm": ("1Gi", "512Mi", "0", "lots", "99999999999999999999Ei"),
    "env": ("URL=http://x:1", "OMP_NUM_THREADS=4", "A=", "=v", "1X=v", "NB2PIPE_STORE=x"),
}

FOREIGN_TAGS: tuple[str, ...] = (
    "remove-cell", "hide-input", "raises-exception", "notebook:other", "injected-parameters",
)

#: sources a cell may be given; ``{name}`` becomes a name the notebook assigns
SNIPPETS: dict[str, tuple[str, ...]] = {
    "syntax-error": (
        "def f(:\n    pass", "x = (", "if True\n    pass", "print 'hi'", "x = 1\n  y = 2", "a = 'unterminated",
        "f'{'", "x = 0777", "x = 1_", "type X = int", "def f[T](x: T): pass", "s = '\\N{NO SUCH NAME}'",
        "\tif x:\n        pass", "lambda x: (yield)", "return 5", "yield 1", "break", "nonlocal {name}",
        "from __future__ import braces", "{name} = = 1", "class:", "else:\n    pass", "@\ndef f(): pass",
    ),
    "magic": (
        "%time {name} = 1", "%%bash\necho hi", "!pip install x", "%pip install -q pandas==2.0",
        "!pip install --upgrade 'numpy<2'", "%%time\n{name} = 1", "files = !ls", "listing = %sx ls", "{name}?",
        "?{name}", "%matplotlib inline", "%load_ext autoreload\n%autoreload 2", "%%writefile f.py\nprint(1)",
        "!pip install", "!pip install -r requirements.txt", "%pip install git+https://example.com/x.git",
        "%%capture\n{name} = 1", "%run other.ipynb", "get_ipython().run_line_magic('time', '')", "%%", "%", "!",
        "!pip install 'a b'", "%pip install ${PKG}", "print(1)\n%%time\nx = 2",
    ),
    "global-del": (
        "global {name}\n{name} = 1", "def f():\n    global {name}\n    {name} = 1\nf()", "global undefined_thing",
        "del {name}", "del undefined_name", "{name} = [1]\ndel {name}[0]", "del ({name}, other)", "del {name}.attr",
        "del {name}\n{name} = 2", "try:\n    {name} = 1\nfinally:\n    del {name}",
    ),
    "walrus": (
        "if (n := 10) > 5:\n    print(n)", "({name} := 5)", "data = [z := 1, z + 1]", "[w := i for i in range(3)]",
        "print({name} := 1)", "while (chunk := 0):\n    pass",
    ),
    "async": (
        "await asyncio.sleep(0)", "async def f():\n    await g()", "async for x in aiter():\n    print(x)",
        "async with lock:\n    pass", "{name} = await fetch()", "[x async for x in agen()]",
        "import asyncio\nasync def main():\n    return 1\n{name} = await main()",
    ),
    "match": (
        "match {name}:\n    case 'go':\n        x = 1\n    case [a, b, *rest]:\n        x = a\n"
        "    case {'k': v}:\n        x = v\n    case Point(x=px):\n        x = px\n    case _:\n        x = 0",
        "match = 5\ncase = 3\nprint(match, case)", "match {name}:\n    case int() as n if n > 0:\n        {name} = n",
    ),
    "imports": (
        "from os.path import *", "from sklearn.datasets import *\nX = load_iris()", "from .local import thing",
        "import a.b.c", "from __future__ import annotations", "import importlib\nm = importlib.import_module('json')",
        "__import__('os')", "import numpy as np, pandas as pd", "import no_such_module_xyz\n{name} = 1",
        "from math import (sqrt,\n    pi)",
    ),
    "exit": (
        "exit()", "quit()", "import sys\nsys.exit(1)", "raise SystemExit(0)", "import os\nos._exit(0)",
        "raise KeyboardInterrupt",
    ),
    "long": (
        "x = " + "1 + " * 5000 + "1", "s = '" + "a" * 100_000 + "'", "# " + "c" * 50_000,
        "x = [" + ", ".join(str(i) for i in range(20_000)) + "]", "\n" * 5000 + "x = 1",
        "\n".join(f"v{i} = {i}" for i in range(3000)),
    ),
    "deep": (
        "x = " + "[" * 150 + "]" * 150, "x = " + "(" * 300 + ")" * 300, "x = " + "-" * 20_000 + "1",
        "a = 1\nb = " + " + ".join(["a"] * 5000), "x = " + "not " * 5000 + "True", "x = a" + ".b" * 5000,
        "x = f" + "()" * 5000, "".join(" " * i + f"if x{i}:\n" for i in range(90)) + " " * 90 + "y = 1",
        "".join("    " * i + f"def f{i}():\n" for i in range(40)) + "    " * 40 + "return {name}",
        "x = " + "{'a': " * 150 + "1" + "}" * 150, "x = " + "lambda: " * 500 + "1", "x = f'" + "{" * 50,
        "x = " + " if c else ".join(["1"] * 2000),
    ),
    "unicode": (
        "données = 1\nprint(données)", "名前 = 'x'\nprint(名前)", "ﬁle = 1\nprint(file)", "π = 3.14\nτ = 2 * π",
        "Ω = {name}", "\uff58 = 1\nprint(x)", "\u00e9t\u00e9 = 1\n\u0065\u0301t\u0065\u0301 = 2",
    ),
    "underscore": (
        "_ = 5", "_private = 1\nprint(_private)", "__x = {name}", "__name__ = 'x'", "__builtins__ = None",
        "_nb2pipe_run_step = 1", "print(__file__)", "_{name} = {name}",
    ),
    "reserved": (
        "nb2pipe_report = 1", "nb2pipe = 2", "kfp = 3", "dsl = 4", "Input = 1\nOutput = 2", "Dataset = {name}",
        "Model = 6", "Artifact = 1", "Metrics = 2", "executor_input = 1", "payloads = 1", "force_retrain = True",
        "os = 1", "json = 2", "sys = 3", "pickle = 0", "print = None", "len = 5", "def run_step(): pass",
        "self = 1", "input = {name}", "pipeline = 1",
    ),
    "dataflow": (
        "{name} += 1", "{name}.append(1)", "{name}[0] = 1", "print({name})", "{name} = {name}",
        "def f():\n    return {name}\n{name} = f()", "class A:\n    x = {name}\n{name} = A()",
        "for {name} in range(3):\n    pass", "with open('f') as {name}:\n    pass",
        "import threading\n{name} = threading.Lock()", "{name} = (i for i in range(3))", "{name}, *rest = [1, 2, 3]",
        "exec('{name} = 1')", "globals()['{name}'] = 1", "lambda: {name}", "@decorator\ndef {name}(): pass",
        "print(undefined_variable)", "{name}: int", "{name}: int = 5",
        "x = y = {name} = 0", "try:\n    pass\nexcept* ValueError:\n    pass", "raise", "assert {name}, 'msg'",
    ),
    "blank": ("", "   ", "\n\n", "# only a comment", "pass", "...", "'''docstring'''", "\\", "\x0c", ";", "x = 1;"),
}

#: parameters-cell lines: literals of every odd kind, and non-literals
ODD_PARAMETERS: tuple[str, ...] = (
    "a = None", "b = (1, 2)", "c = {1, 2}", "d = b'x'", "e = [[1, [2, [3]]]]", "f = 1e400", "g = {1: 'a'}",
    "h = {(1, 2): 3}", "i = -0.0", "j = float('nan')", "k = 10**100", "l = 123456789012345678901234567890",
    "m = 1j", "n = ...", "o = True; p = 'x'", "q: int = 5", "r = s = 1", "t, u = 1, 2", "v = 'é' * 3",
    "w = [1, 'a', None]", "x = {'a': {1: 2}}", "y = -5", "z = +5", "aa = not True", "bb = f'x'", "cc = r'\\n'",
    "dd = '''multi\nline'''", "ee = 0x10", "ff = 1_000", "{name} = 1\n{name} = 2", "import os", "print(1)",
    "nb2pipe_report = 1", "payloads = 'x'", "force_retrain = False", "{name} = 5", "_hidden = 1", "名前 = 1",
    "big = -99999999999999999999", "mixed = [1, 2.0]", "empty_list = []", "empty_dict = {}", "t2 = ()",
    "nested = {'a': [1, {'b': None}]}", "inf = -1e400", "neg = -(1)", "s2 = 'a' 'b'", "bad =", "tup = 1,",
    "dct = dict(a=1)", "long = '" + "x" * 10_000 + "'", "x = 1  # comment", "# only a comment", "",
)

METRICS_LINES: tuple[str, ...] = (
    "accuracy", "print(accuracy)", "print(a, b)", "x.y", "x[0]", "1 + 1", "undefined_metric", "", "{name}",
    "print({name})", "{name}\n{name}", "f(x)", "# comment", "import os", "nb2pipe_report", "print()", "名前",
    "_{name}", "{name} = 1", "print({name}, end='')", "await {name}",
)

#: keys of metadata.nb2pipe / metadata.kubeflow_notebook
METADATA_KEYS: tuple[str, ...] = (
    "steps_defaults", "pipeline_name", "pipeline_description", "experiment", "experiment_name", "docker_image",
    "image", "base_image", "volumes", "deploy", "drift", "kfp_host", "mlflow_tracking_uri", "katib_run", "unknown",
)
_ANY_ODD: tuple[Any, ...] = (None, "", 5, True, 1.5, [], {}, ["x"], {"a": 1}, "名前", "x" * 500, " ", float("inf"))
METADATA_VALUES: dict[str, tuple[Any, ...]] = {
    "*": _ANY_ODD,
    "steps_defaults": (*_ANY_ODD, "label:a:b", [1, 2], [None], ["label:team:ml", "limit:memory:4Gi"], {"a": 1},
                       ["image:python:3.12"], ["step:x"], ["parameters"], [["label:a:b"]], ["gpu:1", "gpu:2"]),
    "pipeline_name": (*_ANY_ODD, "My Pipeline!", "-", "1abc", "a" * 200),
    "experiment": (*_ANY_ODD, {"name": 5}, {"name": ""}, {"name": "e", "id": "new"}, {"id": None}),
    "volumes": (*_ANY_ODD, [{"name": 1}], "x", [{}]),
    "deploy": (*_ANY_ODD, {"gpu": "1"}, {"min_replicas": 3, "max_replicas": 1}, {"port": -1}, {"gpu": 10**30},
               {"canary_percent": 101}, {"scale_metric": "bogus"}, {"monitor": "yes"}, {"bogus": 1}, {"port": True}),
    "drift": (*_ANY_ODD, {"p_value": 2}, {"p_value": float("nan")}, {"min_rows": 10**30}, {"method": "x"},
              {"categorical": [1, None]}, {"min_rows": 1.5}, {"p_value": "0.1"}, {"correction": None}),
}

#: paths a notebook may be named by: pipeline and step names come from them
NOTEBOOK_PATHS: tuple[str, ...] = (
    "nb.ipynb", "my notebook.ipynb", "données.ipynb", "1.ipynb", "-.ipynb", "名前.ipynb", "x.y.ipynb", "_.ipynb",
    ".ipynb", "nb2pipe_report.ipynb", "no_suffix", "dir/sub/nb.ipynb", "a" * 200 + ".ipynb", "UPPER.IPYNB",
)
# fmt: on

Notebook = dict[str, Any]


# --- reading a notebook whose shape earlier mutations may have broken --------------------------


def cells_of(nb: Notebook) -> list[Any]:
    cells = nb.get("cells")
    return cells if isinstance(cells, list) else []


def dict_cells(nb: Notebook, cell_type: str | None = None) -> list[dict[str, Any]]:
    return [c for c in cells_of(nb) if isinstance(c, dict) and (cell_type is None or c.get("cell_type") == cell_type)]


def tags_of(cell: dict[str, Any], create: bool = False) -> list[Any] | None:
    """The cell's tag list (made when missing and ``create``, else a throwaway empty one);
    ``None`` when an earlier mutation broke it. Looking must not add metadata to a cell."""
    metadata = cell.get("metadata")
    if metadata is None and create:
        metadata = cell["metadata"] = {}
    if not isinstance(metadata, dict):
        return None if metadata is not None else []
    tags = metadata.get("tags")
    if tags is None:
        if not create:
            return []
        tags = metadata["tags"] = []
    return tags if isinstance(tags, list) else None


def source_text(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(part for part in source if isinstance(part, str))
    return source if isinstance(source, str) else ""


def assigned_names(nb: Notebook) -> list[str]:
    """Names the notebook's code assigns, for snippets that touch real data."""
    found: list[str] = []
    for cell in dict_cells(nb, "code"):
        try:
            tree = ast.parse(source_text(cell))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in found:
                found.append(node.id)
    return found or ["x"]


def step_names(nb: Notebook) -> list[str]:
    names = []
    for cell in dict_cells(nb):
        for tag in tags_of(cell) or []:
            if isinstance(tag, str) and tag.split(":", 1)[0] in ("step", "block") and ":" in tag:
                names.append(tag.split(":", 1)[1])
    return names or ["train"]


# --- drawing values and cells ------------------------------------------------------------------


def fill_name(rng: random.Random, nb: Notebook, template: str) -> str:
    return template.replace("{name}", rng.choice(assigned_names(nb)))


def typo(rng: random.Random, text: str) -> str:
    if not text:
        return "x"
    at = rng.randrange(len(text))
    how = rng.choice(("drop", "swap", "insert", "upper", "lookalike", "space", "zero-width"))
    if how == "drop":
        return text[:at] + text[at + 1 :]
    if how == "swap" and len(text) > 1:
        at = min(at, len(text) - 2)
        return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    if how == "insert":
        return text[:at] + rng.choice("abcxyz:-_") + text[at:]
    if how == "upper":
        return text.upper()
    if how == "lookalike":  # Cyrillic letters that look Latin
        return text.replace("e", "\u0435").replace("a", "\u0430").replace("p", "\u0440")
    if how == "space":
        return text[:at] + " " + text[at:]
    return text[:at] + "\u200b" + text[at:]


def random_tag(rng: random.Random, nb: Notebook) -> str:
    """A tag of any kind in any spelling, with a good, odd or broken value."""
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(FOREIGN_TAGS)
    spec = rng.choice(SPECS)
    head = rng.choice(spec.spellings)
    if spec.fields == 0:
        tag = head if rng.random() < 0.85 else f"{head}:{rng.choice(WEIRD_VALUES)}"
    else:
        good = list(KIND_VALUES.get(spec.kind, ()))
        if spec.kind in ("step", "after"):
            existing = step_names(nb)
            good += existing + [n.replace("_", "-").upper() for n in existing]
        value = rng.choice(good) if good and rng.random() < 0.75 else rng.choice(WEIRD_VALUES)
        tag = f"{head}:{value}"
    decoration = rng.random()
    if decoration < 0.12:
        tag = typo(rng, tag)
    elif decoration < 0.18:
        tag = rng.choice((" ", "\t", "\n")) + tag + rng.choice(("", " ", "\t"))
    elif decoration < 0.24:
        tag = tag + rng.choice((":", "::", ":extra", ":a:b"))
    elif decoration < 0.27:
        tag = tag + "x" * 2000
    return tag


def pick_cell(rng: random.Random, nb: Notebook, code_only: bool = True) -> dict[str, Any] | None:
    cells = dict_cells(nb, "code" if code_only and rng.random() < 0.85 else None)
    return rng.choice(cells) if cells else None


def role_cell(rng: random.Random, nb: Notebook, role: str, spellings: tuple[str, ...]) -> dict[str, Any]:
    """The first code cell tagged with one of ``spellings``, else a new one so tagged, put anywhere."""
    for cell in dict_cells(nb, "code"):
        if any(tag in spellings for tag in tags_of(cell) or []):
            return cell
    cell = {"cell_type": "code", "metadata": {"tags": [rng.choice(spellings)]}, "source": "", "outputs": []}
    cells = cells_of(nb)
    cells.insert(rng.randint(0, len(cells)), cell)
    if "cells" not in nb:
        nb["cells"] = cells
    return cell


def weighted(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    """An item of a table of ``(item, weight)`` rows, drawn by weight."""
    return rng.choices([item for item, _ in table], weights=[weight for _, weight in table])[0]


def compile_options(rng: random.Random) -> dict[str, Any]:
    """Options for the compile: mostly none; now and then the DSL file, monitoring, an odd name or image."""
    options: dict[str, Any] = {}
    if rng.random() < 0.25:
        options["dsl"] = True
    if rng.random() < 0.08:
        options["monitoring"] = True
        options.pop("dsl", None)
    if rng.random() < 0.04:
        options["name"] = rng.choice(("", "名前", "a" * 300, "--x", "My Pipeline!", "1"))
    if rng.random() < 0.04:
        options["image"] = rng.choice(("", "a b", "python:3.12", "UPPER:x", "\u00e9"))
    return options
