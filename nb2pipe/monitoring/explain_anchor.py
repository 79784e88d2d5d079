"""Anchor explanations (alibi's AnchorTabular, AnchorText, AnchorImage) behind
:class:`nb2pipe.monitoring.explain.Explainer`: any model with ``predict``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from nb2pipe.monitoring.explain import AnchorRow, Condition, Explainer, Explanation
from nb2pipe.monitoring.explain_inputs import TABULAR, TEXT, InputForm, predictor_for
from nb2pipe.native_order import load_triton_before_tensorflow

#: alibi's default: an anchor must hold with at least this precision
THRESHOLD = 0.95
#: quantiles AnchorTabular bins numeric columns at (alibi's default)
PERCENTILES = (25, 50, 75)
#: rows per predictor call: alibi's default of 100 makes ~700 calls for a 30-column table, whose
#: fixed cost (pandas, scikit-learn's checks, alibi's sampler) dominates; 300 takes ~40 % less time
BATCH_SIZE = 300
#: tabular search settings. alibi stops refining an anchor once the precision's confidence
#: bounds are within TAU of the threshold; 0.25 (alibi: 0.15) halves the predictor calls, and
#: the precision reported (and checked against held-out rows by the tests) stays >= 0.95.
#: Coverage is estimated on COVERAGE_SAMPLES rows (alibi: 10,000), enough for two decimals.
TABULAR_SEARCH = {"tau": 0.25, "coverage_samples": 1000}
#: reference images that fill the segments a perturbed image leaves out
BACKGROUNDS = 100
#: images with a shorter side below this are cut into square patches, larger ones by slic
SLIC_FROM = 32


class AnchorExplainer(Explainer):
    method = "anchor"

    def __init__(self, model: Any, form: InputForm, *, threshold: float = THRESHOLD, seed: int = 0) -> None:
        self.form, self.modality, self.feature_names = form, form.modality, form.feature_names
        self.threshold, self.seed = threshold, seed
        predictor = predictor_for(model, form)
        load_triton_before_tensorflow()  # every anchor explainer of alibi loads TensorFlow
        with seeded(seed):
            if form.modality == TABULAR:
                self._explainer = _tabular(predictor, form, seed)
                self._bins = _bins(form)
            elif form.modality == TEXT:
                from alibi.explainers import AnchorText

                self._explainer = AnchorText(predictor, sampling_strategy="unknown", nlp=blank_nlp(), seed=seed)
            else:
                from alibi.explainers import AnchorImage

                self._explainer = AnchorImage(
                    predictor,
                    form.image_shape,
                    segmentation_fn=segmentation_for(form.image_shape),
                    images_background=backgrounds(form, seed),
                    seed=seed,
                )

    def explain(self, rows: Any) -> Explanation:
        prepared = self.form.alibi_rows(rows)
        records = []
        for item in prepared:
            with seeded(self.seed):
                search = TABULAR_SEARCH if self.modality == TABULAR else {}
                found = self._explainer.explain(item, threshold=self.threshold, batch_size=BATCH_SIZE, **search)
            records.append(self._record(item, found))
        return Explanation(
            "anchor", self.modality, tuple(records), self.feature_names, channels_first=self.form.channels_first
        )

    def _record(self, item: Any, found: Any) -> AnchorRow:
        raw = found.raw
        prediction = raw["prediction"][0]
        precision, coverage = _scalar(found.precision), _scalar(found.coverage)
        if self.modality == TABULAR:
            conditions = _conditions(self._explainer, raw["encoded_features"], self.form, self._bins)
            anchor = tuple(condition.text() for condition in conditions)
            return AnchorRow(prediction, anchor, precision, coverage, conditions=conditions)
        if self.modality == TEXT:
            words = tuple(str(word) for word in found.anchor)
            positions = tuple(int(p) for p in raw["positions"])
            return AnchorRow(prediction, words, precision, coverage, positions=positions)
        segments = found.segments
        ids = tuple(int(segment) for segment in raw["feature"])
        return AnchorRow(prediction, ids, precision, coverage, segments=segments)


def _scalar(value: Any) -> float:
    """alibi reports an empty anchor's precision as a 1-element array."""
    import numpy

    return float(numpy.asarray(value, dtype=numpy.float64).reshape(-1)[-1])


def backgrounds(form: InputForm, seed: int, count: int = BACKGROUNDS) -> Any:
    """Images whose pixels replace the segments a sample leaves out. alibi's default, each
    segment's own mean, keeps a small image's shape: on 8x8 digits the model still sees the
    digit with every patch averaged, and the anchor comes out empty (it holds anyway)."""
    import numpy

    images = numpy.asarray(form.data)
    chosen = numpy.random.default_rng(seed).choice(len(images), min(count, len(images)), replace=False)
    return images[numpy.sort(chosen)].reshape((len(chosen), *form.image_shape)).astype(numpy.float32)


#: alibi draws from numpy's global generator: one seeded search at a time (a server's threads)
_GLOBAL_RANDOM = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """alibi samples from numpy's global generator: seed it for repeatable anchors, and hand
    the caller's state back afterwards."""
    import numpy

    with _GLOBAL_RANDOM:
        state = numpy.random.get_state()
        numpy.random.seed(seed)
        try:
            yield
        finally:
            numpy.random.set_state(state)


def _tabular(predictor: Callable[[Any], Any], form: InputForm, seed: int) -> Any:
    import numpy
    from alibi.explainers import AnchorTabular

    class ExactAnchorTabular(AnchorTabular):
        """Keeps the anchor's encoded predicates, which alibi replaces by names rounded to
        two decimals (``0.06 < mean fractal dimension <= 0.06``): the exact bounds come from them."""

        def add_names_to_exp(self, explanation: dict) -> None:
            explanation["encoded_features"] = list(explanation["feature"])
            super().add_names_to_exp(explanation)

        def fit(self, train_data: Any, disc_perc: tuple[int, ...] = PERCENTILES, **kwargs: Any) -> Any:
            super().fit(train_data, disc_perc, **kwargs)
            # alibi sets samplers in fit, unannotated
            self.samplers = [binned_sampler(sampler) for sampler in self.samplers]  # type: ignore[has-type]
            return self

    categorical = {index: [str(value) for value in values] for index, values in form.categories.items()}
    explainer = ExactAnchorTabular(
        predictor, list(form.feature_names), categorical_names=categorical or None, dtype=numpy.float64, seed=seed
    )
    return explainer.fit(form.data, disc_perc=PERCENTILES)


def binned_sampler(sampler: Any) -> Any:
    """alibi's fitted TabularSampler with its hot loop vectorised: which encoded predicates each
    sample satisfies. alibi loops over the predicates (~90 for 30 columns) in Python on every
    draw; one comparison of the sampled bins with each predicate's bin range gives the same 0/1
    matrix, draws the same random numbers, and so finds the same anchors."""
    import numpy
    from alibi.explainers.anchors.anchor_tabular import TabularSampler

    class BinnedTabularSampler(TabularSampler):
        def build_lookups(self, X: Any) -> list[dict]:
            lookups = super().build_lookups(X)
            cat_lookup, ord_lookup, enc2feat_idx = lookups
            encoded = range(len(enc2feat_idx))
            # a categorical predicate is "equals the row's value": the range [value, value]
            self.predicate_columns = numpy.array([enc2feat_idx[i] for i in encoded], dtype=numpy.intp)
            self.predicate_low = numpy.array(
                [cat_lookup[i] if i in cat_lookup else min(ord_lookup[i]) for i in encoded], dtype=numpy.float64
            )
            self.predicate_high = numpy.array(
                [cat_lookup[i] if i in cat_lookup else max(ord_lookup[i]) for i in encoded], dtype=numpy.float64
            )
            return lookups

        def __call__(self, anchor: tuple[int, tuple], num_samples: int, compute_labels: bool = True) -> list[Any]:
            raw_data, d_raw_data, coverage = self.perturbation(anchor[1], num_samples)
            binned = d_raw_data[:, self.predicate_columns]
            data = ((self.predicate_low <= binned) & (binned <= self.predicate_high)).astype(int)
            if not compute_labels:
                return [data]
            labels = self.compare_labels(raw_data)
            covered_true = raw_data[labels, :][: self.n_covered_ex]
            covered_false = raw_data[numpy.logical_not(labels), :][: self.n_covered_ex]
            return [covered_true, covered_false, labels.astype(int), data, coverage, anchor[0]]

    # the fitted state (training rows, their bins, per-bin row index) is kept, not rebuilt
    binned = BinnedTabularSampler.__new__(BinnedTabularSampler)
    binned.__dict__.update(sampler.__dict__)
    binned.disc = BinEdges(sampler.disc)
    return binned


class BinEdges:
    """alibi's fitted Discretizer, all columns at once: alibi bins each column of every sampled
    batch with its own ``numpy.searchsorted`` call (and checks the edges are sorted each time).
    A value's bin is the number of its column's edges below it, as searchsorted counts it."""

    def __init__(self, discretizer: Any) -> None:
        import numpy

        edges = [numpy.asarray(discretizer.lambdas[column].keywords["qts"]) for column in discretizer.lambdas]
        self.columns = numpy.array(list(discretizer.lambdas), dtype=numpy.intp)
        self.edge_counts = numpy.array([len(column_edges) for column_edges in edges])
        # columns have fewer edges where percentiles coincide: pad with +inf, never below a value
        self.edges = numpy.full((len(edges), max(self.edge_counts, default=0)), numpy.inf)
        for index, column_edges in enumerate(edges):
            self.edges[index, : len(column_edges)] = column_edges

    def discretize(self, data: Any) -> Any:
        import numpy

        values = data[:, self.columns]
        bins = (self.edges[None, :, :] < values[:, :, None]).sum(axis=2)
        binned = data.copy()
        # searchsorted puts NaN after every edge
        binned[:, self.columns] = numpy.where(numpy.isnan(values), self.edge_counts, bins)
        return binned


def _bins(form: InputForm) -> dict[int, Any]:
    """Each numeric column's bin edges, computed as alibi's Discretizer does."""
    import numpy

    return {
        index: numpy.unique(numpy.percentile(form.data[:, index], PERCENTILES))
        for index in range(form.data.shape[1])
        if index not in form.categories
    }


def _conditions(explainer: Any, encoded: list[int], form: InputForm, bins: dict[int, Any]) -> tuple[Condition, ...]:
    """An anchor's predicates as exact conditions: a numeric column's predicate allows a set of
    its bins (``ord_lookup``): those from 0 (value <= an edge) or those above one (value > an edge)."""
    bounds: dict[int, list[float | None]] = {}
    equals: dict[int, Any] = {}
    for index in encoded:
        feature = explainer.enc2feat_idx[index]
        if index in explainer.cat_lookup:
            equals[feature] = form.categories[feature][int(explainer.cat_lookup[index])]
            continue
        allowed = explainer.ord_lookup[index]
        edges = bins[feature]
        low, high = bounds.setdefault(feature, [None, None])
        if 0 in allowed:
            edge = float(edges[max(allowed)])
            bounds[feature][1] = edge if high is None else min(high, edge)
        else:
            edge = float(edges[min(allowed) - 1])
            bounds[feature][0] = edge if low is None else max(low, edge)
    conditions = []
    for feature in dict.fromkeys(explainer.enc2feat_idx[index] for index in encoded):
        name = form.feature_names[feature]
        if feature in equals:
            conditions.append(Condition(name, equals=equals[feature]))
        else:
            conditions.append(Condition(name, low=bounds[feature][0], high=bounds[feature][1]))
    return tuple(conditions)


def blank_nlp() -> Any:
    """spaCy's blank English pipeline (a tokenizer; no model to download). alibi loads a word
    probability table into it (6 s, a million entries) that only the similarity sampler reads:
    an empty one stands in for the UNK sampler used here."""
    import spacy

    nlp = spacy.blank("en")
    if "lexeme_prob" not in nlp.vocab.lookups.tables:
        nlp.vocab.lookups.add_table("lexeme_prob", {})
    return nlp


def segmentation_for(image_shape: tuple[int, ...]) -> Callable[[Any], Any]:
    """How AnchorImage cuts an image into the superpixels an anchor is made of.

    slic follows colour edges but needs tens of pixels per superpixel: on a thumbnail such as
    scikit-learn's 8x8 digits it returns a few ragged blobs (or one). Small images are cut into
    a fixed grid of square patches instead, about 4 on the shorter side, so an anchor reads as
    "these patches" and every image of a data set is cut alike; larger ones get slic.
    """
    side = min(image_shape[0], image_shape[1])
    if side < SLIC_FROM:
        return partial(grid_segments, patch=max(1, -(-side // 4)))
    return slic_segments


def grid_segments(image: Any, *, patch: int) -> Any:
    import numpy

    height, width = image.shape[0], image.shape[1]
    across = -(-width // patch)
    rows = numpy.arange(height) // patch
    columns = numpy.arange(width) // patch
    return rows[:, None] * across + columns[None, :]


def slic_segments(image: Any, n_segments: int = 15) -> Any:
    import numpy
    from skimage.segmentation import slic

    values = numpy.asarray(image, dtype=numpy.float64)
    span = values.max() - values.min()
    values = (values - values.min()) / span if span > 0 else numpy.zeros_like(values)
    if values.shape[-1] == 1:
        # grey levels in [0, 1]: a compactness of 0.1 weighs them against distance as 10 does for Lab colours
        labels = slic(
            values[..., 0], n_segments=n_segments, compactness=0.1, sigma=0.5, start_label=0, channel_axis=None
        )
    else:
        labels = slic(values[..., :3], n_segments=n_segments, compactness=10, sigma=0.5, start_label=0)
    # alibi takes the ids to be 0..K-1
    return numpy.unique(labels, return_inverse=True)[1].reshape(labels.shape)
