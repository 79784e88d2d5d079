"""The anchor search's vectorised sampler (explain_anchor.binned_sampler, BinEdges) answers
exactly as alibi's own: same bins, same predicate matrix, same random draws, same anchors."""

from __future__ import annotations

from typing import Any

import numpy
import pandas
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nb2pipe.monitoring import explain_anchor
from nb2pipe.monitoring.explain import build_explainer
from nb2pipe.native_order import load_triton_before_tensorflow


@pytest.fixture(scope="module")
def cancer() -> tuple[Any, pandas.DataFrame]:
    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features, labels)
    return model, features


def mixed_table() -> tuple[Any, pandas.DataFrame]:
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    rng = numpy.random.default_rng(5)
    frame = pandas.DataFrame(
        {
            "size": rng.uniform(0, 1, 400),
            "colour": rng.choice(["red", "green", "blue"], 400),
            "count": rng.integers(0, 3, 400),  # few values: percentiles coincide, fewer edges
        }
    )
    labels = ((frame["colour"] == "red") & (frame["size"] > 0.3)).astype(int)
    encode = make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough")
    return make_pipeline(encode, DecisionTreeClassifier(random_state=0)).fit(frame, labels), frame


def alibis_own(model: Any, table: pandas.DataFrame, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(explain_anchor, "binned_sampler", lambda sampler: sampler)
        return build_explainer("anchor", model, table)


def test_bin_edges_bin_every_column_as_alibis_discretizer() -> None:
    load_triton_before_tensorflow()
    from alibi.utils.discretizer import Discretizer

    rng = numpy.random.default_rng(0)
    train = numpy.column_stack([rng.normal(size=300), rng.integers(0, 3, 300), rng.integers(0, 2, 300)]).astype(float)
    train[:250, 2] = 0.0  # three percentiles on one value: one edge
    alibis = Discretizer(train, [0, 2], ["a", "b", "c"], percentiles=(25, 50, 75))
    edges = explain_anchor.BinEdges(alibis)
    assert edges.edge_counts.tolist() == [3, 1]
    samples = numpy.vstack([rng.normal(size=(200, 3)) * 2, train[:50]])
    samples[:3, 0] = numpy.percentile(train[:, 0], (25, 50, 75))  # on an edge: the lower bin, as searchsorted
    samples[3, 0] = numpy.nan
    samples[4, 1] = numpy.nan  # an undiscretised column is copied as it is
    expected, found = alibis.discretize(samples), edges.discretize(samples)
    numpy.testing.assert_array_equal(found, expected)
    assert not numpy.shares_memory(found, samples)


@pytest.mark.parametrize("table", ["cancer", "mixed"])
def test_the_vectorised_sampler_draws_what_alibis_draws(
    table: str, cancer: tuple[Any, pandas.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, frame = cancer if table == "cancer" else mixed_table()
    fast: Any = build_explainer("anchor", model, frame)
    slow = alibis_own(model, frame, monkeypatch)
    fast_sampler, slow_sampler = fast._explainer.samplers[0], slow._explainer.samplers[0]
    assert type(fast_sampler).__name__ == "BinnedTabularSampler" and type(slow_sampler).__name__ == "TabularSampler"
    row = fast.form.alibi_rows(frame.iloc[[7]])[0]
    for explainer in (fast, slow):
        explainer._explainer.samplers[0].set_instance_label(row)
        explainer._explainer.samplers[0].set_n_covered(10)
        explainer._explainer._build_sampling_lookups(row)
    encoded = sorted(fast._explainer.enc2feat_idx)
    for anchor in [(), (encoded[0],), (encoded[1], encoded[-1]), tuple(encoded[::3])]:
        for compute_labels in (True, False):
            drawn = []
            for sampler in (fast_sampler, slow_sampler):
                with explain_anchor.seeded(11):
                    drawn.append(sampler((0, anchor), 250, compute_labels))
            assert len(drawn[0]) == len(drawn[1])
            for mine, alibis in zip(*drawn, strict=True):
                numpy.testing.assert_array_equal(mine, alibis)


@pytest.mark.parametrize("table", ["cancer", "mixed"])
def test_the_same_anchors_are_found_with_alibis_sampler(
    table: str, cancer: tuple[Any, pandas.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, frame = cancer if table == "cancer" else mixed_table()
    rows = frame.iloc[[0, 3, 19, 40]]
    fast = build_explainer("anchor", model, frame).explain(rows).rows
    slow = alibis_own(model, frame, monkeypatch).explain(rows).rows
    assert [repr(row) for row in fast] == [repr(row) for row in slow]
    assert all(row.anchor for row in fast)  # real anchors, not the empty rule on both sides
