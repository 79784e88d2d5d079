"""Compile every ``components/NAME/component.py`` into ``components/NAME/component.yaml``.

python components/build.py           # rewrite the YAML files
python components/build.py --check   # exit 1 when a YAML file is stale
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def component_folders() -> list[Path]:
    return sorted(path.parent for path in HERE.glob("*/component.py"))


def compiled_yaml(folder: Path) -> str:
    """The component YAML kfp's compiler writes for the folder's one component."""
    from kfp import compiler
    from kfp.dsl import base_component

    spec = importlib.util.spec_from_file_location(f"nb2pipe_component_{folder.name}", folder / "component.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [value for value in vars(module).values() if isinstance(value, base_component.BaseComponent)]
    if len(found) != 1:
        raise SystemExit(f"{folder / 'component.py'} defines {len(found)} components; it must define one")
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "component.yaml"
        compiler.Compiler().compile(found[0], str(target))
        return target.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale YAML files")
    args = parser.parse_args(argv)
    stale = []
    for folder in component_folders():
        text = compiled_yaml(folder)
        target = folder / "component.yaml"
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        stale.append(target)
        if not args.check:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(HERE.parent)}")
    if args.check and stale:
        print("stale: " + ", ".join(str(p.relative_to(HERE.parent)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
