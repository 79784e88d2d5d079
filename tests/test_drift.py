"""Drift tests (alibi-detect behind nb2pipe.monitoring.drift), the HTML report, and
``nb2pipe drift``: statistical behaviour on seeded data, encoding, input checks, output."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.drift import (
    INSTALL_HINT,
    MMD_MAX_ROWS,
    DriftError,
    DriftResult,
    DriftSettings,
    FeatureDrift,
    check_drift,
)
from nb2pipe.monitoring.drift_report import drift_report_html, drift_summary

FEATURES = [f"x{i}" for i in range(20)]
SHIFTED = FEATURES[:3]


def normal_tables(seed: int, shift: float = 0.0, rows: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Standard normal reference and current tables; ``shift`` moves the mean of SHIFTED."""
    generator = np.random.default_rng(seed)
    reference = pd.DataFrame(generator.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    current = pd.DataFrame(generator.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    current[SHIFTED] += shift
    return reference, current


def mixed_tables(seed: int = 0, rows: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A numeric column that stays put and a colour column whose mix changes; the current
    table also has a colour the reference never saw."""
    generator = np.random.default_rng(seed)
    reference = pd.DataFrame(
        {"size": generator.normal(size=rows), "colour": generator.choice(["red", "green", "blue"], rows)}
    )
    current = pd.DataFrame(
        {
            "size": generator.normal(size=rows),
            "colour": generator.choice(["red", "green", "blue", "pink"], rows, p=[0.55, 0.2, 0.15, 0.1]),
        }
    )
    return reference, current


# --- the acceptance criteria: 20 numeric features, n = 1000, p = 0.05 ---------------------


@pytest.mark.slow
def test_no_drift_is_rarely_reported() -> None:
    # Bonferroni keeps the family-wise error at or below 5 %; KS's asymptotic p-values are a
    # little conservative here (about 3.6 % over 1000 seeded trials)
    flagged = [check_drift(*normal_tables(seed)).is_drift for seed in range(100)]
    assert sum(flagged) <= 5


@pytest.mark.slow
def test_a_half_sigma_shift_on_three_features_is_found() -> None:
    results = [check_drift(*normal_tables(1000 + seed, shift=0.5)) for seed in range(100)]
    assert sum(result.is_drift for result in results) >= 95
    found = [{feature.name for feature in result.drifted} for result in results]
    assert all(names >= set(SHIFTED) for names in found)
    # a false alarm on one of the 17 unshifted features has a chance of p / 20 per feature
    false_alarms = sum(len(names - set(SHIFTED)) for names in found)
    assert false_alarms <= 10


@pytest.mark.slow
def test_fdr_threshold_grows_with_the_discoveries() -> None:
    result = check_drift(*normal_tables(7, shift=0.5), DriftSettings(correction="fdr"))
    assert {feature.name for feature in result.drifted} == set(SHIFTED)
    # Benjamini-Hochberg: the largest k with p(k) < q k / n sets the threshold
    assert result.threshold == pytest.approx(0.05 * 3 / 20)


# --- methods and encodings --------------------------------------------------------------


@pytest.mark.slow
def test_tabular_tests_categories_with_chi2() -> None:
    result = check_drift(*mixed_tables())
    features = {feature.name: feature for feature in result.features}
    assert (features["colour"].kind, features["colour"].test) == ("categorical", "chi2")
    assert (features["size"].kind, features["size"].test) == ("numeric", "ks")
    assert result.is_drift and features["colour"].is_drift and not features["size"].is_drift


@pytest.mark.slow
def test_a_category_has_one_code_in_both_tables_whatever_their_dtypes() -> None:
    reference, _ = mixed_tables()
    # the same values: as a categorical with its categories in another order, and as text
    reordered = reference.assign(colour=pd.Categorical(reference["colour"], categories=["red", "blue", "green"]))
    result = check_drift(reordered, reference.copy())
    colour = next(feature for feature in result.features if feature.name == "colour")
    assert colour.p_value == pytest.approx(1.0) and not result.is_drift


@pytest.mark.slow
def test_listed_columns_are_categorical_even_when_numeric() -> None:
    generator = np.random.default_rng(3)
    reference = pd.DataFrame({"grade": generator.integers(0, 4, 500), "score": generator.normal(size=500)})
    current = pd.DataFrame({"grade": generator.integers(0, 4, 500), "score": generator.normal(size=500)})
    result = check_drift(reference, current, DriftSettings(categorical=("grade",)))
    assert [(feature.name, feature.test) for feature in result.features] == [("grade", "chi2"), ("score", "ks")]


def test_ks_refuses_categorical_columns_by_name() -> None:
    with pytest.raises(DriftError, match="method ks compares numeric columns only, but colour is categorical"):
        check_drift(*mixed_tables(), DriftSettings(method="ks"))


@pytest.mark.slow
def test_ks_on_numeric_columns() -> None:
    result = check_drift(*normal_tables(5, shift=1.0), DriftSettings(method="ks"))
    assert result.method == "ks" and {feature.name for feature in result.drifted} == set(SHIFTED)
    assert all(feature.test == "ks" for feature in result.features)


@pytest.mark.slow
def test_chi2_treats_every_column_as_categorical() -> None:
    generator = np.random.default_rng(4)
    reference = pd.DataFrame({"stars": generator.integers(1, 6, 800), "rooms": generator.integers(1, 4, 800)})
    current = pd.DataFrame(
        {"stars": generator.choice([1, 2, 3, 4, 5], 800, p=[0.4, 0.3, 0.1, 0.1, 0.1]), "rooms": reference["rooms"]}
    )
    result = check_drift(reference, current, DriftSettings(method="chi2"))
    assert [(feature.name, feature.kind, feature.test) for feature in result.features] == [
        ("stars", "categorical", "chi2"),
        ("rooms", "categorical", "chi2"),
    ]
    assert [feature.is_drift for feature in result.features] == [True, False]


@pytest.mark.slow
def test_mmd_finds_a_clear_shift_on_a_bounded_sample() -> None:
    reference, current = normal_tables(6, shift=1.0, rows=MMD_MAX_ROWS + 100)
    result = check_drift(reference[FEATURES[:5]], current[FEATURES[:5]], DriftSettings(method="mmd"))
    assert result.is_drift and result.features == ()
    assert result.p_value is not None and result.p_value < 0.05 and result.distance is not None
    assert (result.reference_rows, result.current_rows) == (MMD_MAX_ROWS + 100,) * 2
    assert result.metrics()["is_drift"] == 1.0 and "p_value" in result.metrics()


@pytest.mark.slow
def test_mmd_without_a_shift() -> None:
    reference, current = normal_tables(8, rows=150)
    result = check_drift(reference[FEATURES[:5]], current[FEATURES[:5]], DriftSettings(method="mmd"))
    assert not result.is_drift and result.p_value is not None and result.p_value >= 0.05


# --- input checks -----------------------------------------------------------------------


def _frame(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame(columns)


@pytest.mark.parametrize(
    ("reference", "current", "settings", "message"),
    [
        (
            _frame(a=[1.0], b=[2.0]),
            _frame(a=[1.0], c=[2.0]),
            DriftSettings(),
            "the current data lacks b; it has c, which the reference lacks",
        ),
        (_frame(a=[]), _frame(a=[1.0]), DriftSettings(), "the reference data has no rows"),
        (pd.DataFrame(index=[0]), pd.DataFrame(index=[0]), DriftSettings(), "the reference data has no columns"),
        (
            _frame(a=[1.0], name=["x"]),
            _frame(a=[1.0], name=["y"]),
            DriftSettings(categorical=("a",)),
            "column 'name' of the reference data holds object values but is tested as numeric: list it as",
        ),
        (_frame(a=[1.0]), _frame(a=["1.5"]), DriftSettings(), "column 'a' of the current data holds object values"),
        (_frame(a=[1.0]), _frame(a=[np.nan]), DriftSettings(), "has 1 missing or infinite value"),
        (_frame(a=[1.0]), _frame(a=[1.0]), DriftSettings(method="tabluar"), "did you mean 'tabular'?"),
        (_frame(a=[1.0]), _frame(a=[1.0]), DriftSettings(correction="bonferoni"), "did you mean 'bonferroni'?"),
        (_frame(age=[1.0]), _frame(age=[1.0]), DriftSettings(categorical=("agee",)), "no column 'agee' (did you mean"),
        (_frame(a=[1.0]), _frame(a=[1.0]), DriftSettings(p_value=5.0), "between 0 and 1"),
        (_frame(a=[1.0]), _frame(a=[1.0]), DriftSettings(backend="evidently"), "unknown drift backend 'evidently'"),
    ],
)
def test_unusable_input_is_explained(
    reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings, message: str
) -> None:
    with pytest.raises(DriftError, match=message.replace("(", r"\(").replace("?", r"\?")):
        check_drift(reference, current, settings)


def test_without_alibi_detect_the_fix_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "alibi_detect.cd", None)  # what importing a missing module does
    with pytest.raises(Nb2PipeError) as raised:
        check_drift(*mixed_tables(rows=20))
    assert str(raised.value) == INSTALL_HINT == "drift detection needs alibi-detect: pip install 'nb2pipe[drift]'"


# --- results ----------------------------------------------------------------------------


def test_metrics_are_flat_numbers_with_safe_unique_names() -> None:
    features = (
        FeatureDrift("mean radius", "numeric", "ks", 0.3, 0.001, True),
        FeatureDrift("mean_radius", "numeric", "ks", 0.01, 0.9, False),
        FeatureDrift("colour/é", "categorical", "chi2", 3.0, 0.2, False),
    )
    metrics = DriftResult("tabular", True, 0.05 / 3, features, 100, 80).metrics()
    assert metrics == {
        "is_drift": 1.0,
        "drifted_features": 1.0,
        "drifted_share": pytest.approx(1 / 3),
        "threshold": pytest.approx(0.05 / 3),
        "p_value_mean_radius": 0.001,
        "p_value_mean_radius_2": 0.9,
        "p_value_colour__": 0.2,
    }


@pytest.mark.slow
def test_to_json_is_json() -> None:
    result = check_drift(*mixed_tables())
    data = json.loads(json.dumps(result.to_json()))
    assert data["is_drift"] is True and data["drifted_features"] == ["colour"]
    assert [feature["name"] for feature in data["features"]] == ["size", "colour"]


def test_summary_of_an_mmd_result() -> None:
    result = DriftResult("mmd", False, 0.05, (), 700, 300, p_value=0.42, distance=0.0012)
    assert drift_summary(result) == (
        "no drift: mmd p-value 0.42 (drift below 0.05), distance 0.0012; 700 reference rows, 300 current rows"
    )


def test_importing_the_modules_loads_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "import nb2pipe.cli.monitoring, nb2pipe.monitoring.drift, nb2pipe.monitoring.drift_report\n"
        "import nb2pipe.store.reference, nb2pipe.store.tables\n"
        "heavy = {'numpy', 'pandas', 'alibi_detect', 'tensorflow', 'mlflow', 'matplotlib', 'scipy'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


# --- the HTML report ----------------------------------------------------------------------


@pytest.mark.slow
def test_report_shows_the_verdict_features_and_a_chart_each() -> None:
    reference, current = mixed_tables()
    hostile = "<script>alert('x')</script>"
    reference[hostile], current[hostile] = reference["size"], current["size"] + 1
    result = check_drift(reference, current)
    page = drift_report_html(result, reference, current)
    assert "<h1>Drift detected</h1>" in page and "2 of 3 features drifted" in page
    assert page.count("<svg") == 3 and page.count('<figure class="plot') == 3
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert ">colour</h3>" in page and ">size</h3>" in page
    # drifted first, then by p-value: the table's first rows are the two drifted features
    table = page[page.index("<tbody>") : page.index("</tbody>")]
    assert table.index("colour") < table.index(">size<") and table.index("&lt;script") < table.index(">size<")
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched


@pytest.mark.slow
def test_report_of_no_drift_and_of_mmd() -> None:
    reference, current = normal_tables(9, rows=150)
    calm = check_drift(reference, current)
    page = drift_report_html(calm, reference, current)
    assert "<h1>No drift</h1>" in page and 'class="verdict calm"' in page
    assert page.count("<svg") == len(FEATURES)
    mmd = check_drift(reference[FEATURES[:3]], current[FEATURES[:3]], DriftSettings(method="mmd"))
    page = drift_report_html(mmd, reference[FEATURES[:3]], current[FEATURES[:3]])
    assert "MMD test on all columns together" in page and "<table>" not in page and page.count("<svg") == 3


# --- nb2pipe drift ------------------------------------------------------------------------


def _cli_wired() -> bool:
    from nb2pipe.cli import build_parser

    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return "drift" in commands.choices


def drift_cli(*argv: str) -> int:
    """``nb2pipe drift ARGV`` in this process: nb2pipe's own CLI once cli.py has the command,
    else the command alone on a parser, with the CLI's handling of nb2pipe errors."""
    if _cli_wired():
        from nb2pipe.cli import main

        return main(["drift", *argv])
    from nb2pipe.cli.monitoring import add_commands

    parser = argparse.ArgumentParser(prog="nb2pipe")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["drift", *argv])
    try:
        return args.handler(args)
    except Nb2PipeError as exc:
        print(f"nb2pipe: {exc}", file=sys.stderr)
        return exc.exit_code


@pytest.fixture
def table_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    reference, current = mixed_tables()
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_parquet(tmp_path / "current.parquet")
    reference.sample(frac=1.0, random_state=1).to_csv(tmp_path / "same.csv", index=False)
    return tmp_path / "reference.csv", tmp_path / "current.parquet", tmp_path / "same.csv"


@pytest.mark.slow
def test_cli_prints_the_verdict_and_drifted_features(
    table_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reference, current, _ = table_files
    assert drift_cli("--reference", str(reference), "--current", str(current)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("drift: 1 of 2 features drifted (tabular")
    assert lines[1].split()[:2] == ["colour", "chi2"] and len(lines) == 2


@pytest.mark.slow
def test_cli_json_and_report(
    table_files: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, current, _ = table_files
    report = tmp_path / "out" / "drift.html"
    argv = ["--reference", str(reference), "--current", str(current), "--json", "--report", str(report)]
    assert drift_cli(*argv, "--method", "chi2", "--correction", "fdr", "--p-value", "0.01") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "chi2" and data["is_drift"] is True and data["report"] == str(report)
    assert "<h1>Drift detected</h1>" in report.read_text(encoding="utf-8")
    assert sorted(path.name for path in report.parent.iterdir()) == ["drift.html"]  # no temporary file left


@pytest.mark.slow
def test_cli_fail_on_drift(table_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    reference, current, same = table_files
    assert drift_cli("--reference", str(reference), "--current", str(current), "--fail-on-drift") == 3
    assert drift_cli("--reference", str(reference), "--current", str(same), "--fail-on-drift") == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("no drift: 0 of 2 features drifted")


def test_cli_categorical_option(table_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    reference, current, _ = table_files
    assert drift_cli("--reference", str(reference), "--current", str(current), "--categorical", "colur") == 1
    assert "no column 'colur' (did you mean 'colour'?)" in capsys.readouterr().err


def test_cli_bad_input_is_one_line_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "drift", "--reference", str(broken), "--current", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"nb2pipe: cannot read {broken} as parquet:") and done.stderr.count("\n") == 1
