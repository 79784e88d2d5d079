"""What explainers are fitted on and what the model takes, for :mod:`nb2pipe.monitoring.explain`.

:func:`input_form` reads the reference data's type and shape once: a table (DataFrame or 2-D
numeric array), texts (strings) or images (numeric N,H,W or N,H,W,C). Its :class:`InputForm`
turns rows into what alibi works on (a float table with categories as codes, strings,
channel-last images) and alibi's batches back into what the model takes;
:func:`predictor_for` is the one predictor handed to every alibi explainer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nb2pipe.errors import Nb2PipeError

TABULAR, TEXT, IMAGE = "tabular", "text", "image"
#: rows handed to a Keras model in one call
KERAS_CHUNK = 512


@dataclass(frozen=True, eq=False)
class InputForm:
    """The reference data as explainers use it, and how to hand a batch back to the model."""

    modality: str
    #: the reference as alibi takes it: a float table, an array of strings, or N,H,W,C images
    data: Any
    feature_names: tuple[str, ...] = ()
    #: a table's DataFrame column labels, when the model takes a DataFrame
    columns: tuple[Hashable, ...] | None = None
    #: column index -> the category values its codes stand for (tabular)
    categories: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    #: column index -> (dtype to restore, whether pandas "category") for columns that are not float64
    dtypes: dict[int, Any] = field(default_factory=dict)
    #: one row's shape as the model takes it (an image without channel axis stays so)
    row_shape: tuple[int, ...] = ()
    #: the dtype the model was given in the reference (images, tables without frame)
    dtype: Any = None
    #: the column name a DataFrame of texts had (pyfunc models take a frame with it)
    text_column: Hashable | None = None
    #: images the model takes as N,C,H,W (a PyTorch module's): row_shape is C,H,W, ``data`` channel-last
    channels_first: bool = False
    #: a table of token ids the model embeds (a PyTorch module's first layer): ids, not numbers to interpolate
    token_ids: bool = False

    def alibi_rows(self, rows: Any) -> Any:
        """Rows in the reference's form -> what alibi explains: float table rows, a list of
        strings, or channel-last images."""
        import numpy

        if self.modality == TEXT:
            return _texts(rows, "the rows to explain")
        if self.modality == IMAGE:
            images = numpy.asarray(rows)
            if images.ndim == len(self.row_shape):
                images = images[numpy.newaxis]
            if images.shape[1:] != self.row_shape:
                raise Nb2PipeError(
                    f"the images to explain have shape {images.shape[1:]}; the model's data has {self.row_shape}"
                )
            if self.channels_first:
                return images.transpose(0, 2, 3, 1).astype(numpy.float32)
            return images.reshape((len(images), *self.image_shape)).astype(numpy.float32)
        return self._table_rows(rows)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """H, W, C: alibi's AnchorImage wants a channel axis."""
        if self.channels_first:
            channels, height, width = self.row_shape
            return (height, width, channels)
        return self.row_shape if len(self.row_shape) == 3 else (*self.row_shape, 1)

    def model_images(self, images: Any) -> Any:
        """Channel-last images (alibi's form) -> laid out as the model takes them (``row_shape``)."""
        import numpy

        images = numpy.asarray(images).reshape((len(images), *self.image_shape))
        return images.transpose(0, 3, 1, 2) if self.channels_first else images.reshape((len(images), *self.row_shape))

    def model_rows(self, batch: Any, kind: str) -> Any:
        """One of alibi's batches -> what a model of ``kind`` (see :func:`model_kind`) takes."""
        import numpy

        if self.modality == TEXT:
            texts = [str(text) for text in batch]
            if kind == "pyfunc":
                import pandas

                return pandas.DataFrame({self.text_column if self.text_column is not None else "text": texts})
            return texts
        if self.modality == IMAGE:
            images = self.model_images(batch)
            return images.astype(numpy.float32 if kind == "keras" else self.dtype, copy=False)
        table = numpy.asarray(batch, dtype=numpy.float64)
        if self.columns is not None and kind != "keras":
            return self._frame(table)
        return table.astype(numpy.float32 if kind == "keras" else self.dtype, copy=False)

    def _frame(self, table: Any) -> Any:
        import numpy
        import pandas

        frame = pandas.DataFrame(table, columns=list(self.columns or ()))
        for index, values in self.categories.items():
            codes = numpy.clip(numpy.rint(table[:, index]).astype(int), 0, len(values) - 1)
            column = numpy.asarray(values, dtype=object)[codes]
            is_category = self.dtypes.get(index, (object, False))[1]
            frame.isetitem(index, pandas.Categorical(column, categories=values) if is_category else column)
        for index, (dtype, _) in self.dtypes.items():
            if index not in self.categories:
                frame.isetitem(index, frame.iloc[:, index].astype(dtype))
        return frame

    def _table_rows(self, rows: Any) -> Any:
        import numpy
        import pandas

        width = len(self.feature_names)
        if isinstance(rows, pandas.DataFrame):
            if self.columns is not None and all(column in rows.columns for column in self.columns):
                rows = rows.loc[:, list(self.columns)]
            values = rows.to_numpy(dtype=object)
        else:
            values = numpy.asarray(rows, dtype=object)
            if values.ndim == 1:
                values = values[numpy.newaxis]
        if values.ndim != 2 or values.shape[1] != width:
            raise Nb2PipeError(
                f"the rows to explain have shape {values.shape}; the model's table has {width} columns "
                f"({', '.join(self.feature_names[:5])}{', ...' if width > 5 else ''})"
            )
        encoded = numpy.empty(values.shape, dtype=numpy.float64)
        for index in range(width):
            column = values[:, index]
            if index in self.categories:
                encoded[:, index] = _codes(column, self.categories[index], self.feature_names[index])
            else:
                try:
                    encoded[:, index] = column.astype(numpy.float64)
                except (TypeError, ValueError) as exc:
                    raise Nb2PipeError(
                        f"column {self.feature_names[index]!r} of the rows is not numeric: {exc}"
                    ) from exc
        return encoded


def input_form(reference: Any, model: Any = None, feature_names: Sequence[str] | None = None) -> InputForm:
    """Decide the modality from ``reference``'s type, shape and dtype, and describe it."""
    import numpy
    import pandas

    if isinstance(reference, pandas.DataFrame):
        if reference.shape[1] == 1 and _all_strings(reference.iloc[:, 0]):
            return InputForm(
                TEXT, numpy.asarray(_texts(reference.iloc[:, 0], "the data")), text_column=reference.columns[0]
            )
        return _frame_form(_model_columns_of(reference, model), feature_names)
    if isinstance(reference, pandas.Series) and _all_strings(reference):
        return InputForm(TEXT, numpy.asarray(_texts(reference, "the data")), text_column=reference.name)
    if isinstance(reference, list | tuple) and reference and all(isinstance(item, str) for item in reference):
        return InputForm(TEXT, numpy.asarray(list(reference), dtype=object))
    array = numpy.asarray(reference)
    one_column = array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)
    if array.dtype.kind in "USO" and one_column and array.size and _all_strings(array.ravel()):
        return InputForm(TEXT, numpy.asarray(_texts(array.ravel(), "the data")))
    if array.dtype.kind in "biuf" and len(array) > 0:
        if array.ndim == 2:
            declared = model_columns(model) if model is not None and model_kind(model) == "pyfunc" else None
            columns = tuple(declared) if declared and len(declared) == array.shape[1] else None
            names = _names(feature_names if feature_names is not None else columns, array.shape[1])
            table = array.astype(numpy.float64)
            return InputForm(TABULAR, table, names, columns=columns, row_shape=array.shape[1:], dtype=array.dtype)
        if array.ndim in (3, 4) and (array.ndim == 3 or array.shape[-1] <= 4):
            return InputForm(IMAGE, array, row_shape=array.shape[1:], dtype=array.dtype)
    shape = getattr(array, "shape", "?")
    raise Nb2PipeError(
        f"cannot explain data of type {type(reference).__name__} with shape {shape} and dtype {array.dtype}: "
        "pass a table (a pandas DataFrame or a 2-D numeric array), texts (a list, Series or 1-D array of strings) "
        "or images (a numeric array N,H,W or N,H,W,C with the channels last; N,C,H,W for a PyTorch module)"
    )


def _frame_form(frame: Any, feature_names: Sequence[str] | None) -> InputForm:
    import numpy
    import pandas
    from pandas.api import types

    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise Nb2PipeError(f"the data is an empty table ({frame.shape[0]} rows, {frame.shape[1]} columns)")
    names = tuple(feature_names) if feature_names is not None else tuple(str(c) for c in frame.columns)
    names = _names(names, frame.shape[1])
    categories: dict[int, tuple[Any, ...]] = {}
    dtypes: dict[int, Any] = {}
    encoded = numpy.empty(frame.shape, dtype=numpy.float64)
    for index in range(frame.shape[1]):
        column = frame.iloc[:, index]
        dtype = column.dtype
        if isinstance(dtype, pandas.CategoricalDtype):
            categories[index] = tuple(dtype.categories)
            dtypes[index] = (dtype, True)
        elif types.is_bool_dtype(dtype) or not types.is_numeric_dtype(dtype):
            categories[index] = tuple(sorted(column.dropna().unique().tolist(), key=str))
            dtypes[index] = (dtype, False)
        else:
            if dtype != numpy.float64:
                dtypes[index] = (dtype, False)
            encoded[:, index] = column.to_numpy(dtype=numpy.float64)
            continue
        encoded[:, index] = _codes(column.to_numpy(dtype=object), categories[index], names[index])
    return InputForm(
        TABULAR,
        encoded,
        names,
        columns=tuple(frame.columns),
        categories=categories,
        dtypes=dtypes,
        row_shape=(frame.shape[1],),
        dtype=numpy.float64,
    )


def _model_columns_of(frame: Any, model: Any) -> Any:
    """The columns the model was fitted on, in its order, when the frame has more (a label
    column kept with the features, say)."""
    wanted = model_columns(model) if model is not None else None
    if wanted and list(frame.columns) != wanted and all(name in frame.columns for name in wanted):
        return frame.loc[:, wanted]
    return frame


def model_columns(model: Any) -> list[str] | None:
    """Column names a fitted model declares: scikit-learn's ``feature_names_in_``, an MLflow
    pyfunc model's signature."""
    declared = getattr(model, "feature_names_in_", None)
    if declared is not None:
        return [str(name) for name in declared]
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_input_schema() if metadata is not None and hasattr(metadata, "get_input_schema") else None
    if schema is not None and schema.has_input_names():
        return list(schema.input_names())
    return None


def _codes(column: Any, values: tuple[Any, ...], name: str) -> Any:
    import numpy

    lookup = {value: code for code, value in enumerate(values)}
    try:
        return numpy.array([lookup[value] for value in column], dtype=numpy.float64)
    except KeyError as exc:
        known = ", ".join(repr(v) for v in values[:8])
        raise Nb2PipeError(
            f"column {name!r} has the value {exc.args[0]!r}, which the data the explainer was fitted on never has "
            f"(it has {known}{', ...' if len(values) > 8 else ''})"
        ) from None


def _names(given: Sequence[str] | None, width: int) -> tuple[str, ...]:
    if given is None:
        return tuple(f"f{i}" for i in range(width))
    names = tuple(str(name) for name in given)
    if len(names) != width:
        raise Nb2PipeError(f"{len(names)} feature names for a table of {width} columns; pass one name per column")
    return names


def _all_strings(values: Any) -> bool:
    return len(values) > 0 and all(isinstance(value, str) for value in values)


def _texts(rows: Any, what: str) -> list[str]:
    import numpy
    import pandas

    if isinstance(rows, str):
        return [rows]
    if isinstance(rows, pandas.DataFrame):
        if rows.shape[1] != 1:
            raise Nb2PipeError(f"{what} must be texts: one column of strings, not {rows.shape[1]} columns")
        rows = rows.iloc[:, 0]
    values = list(numpy.asarray(rows, dtype=object).ravel())
    strange = [value for value in values if not isinstance(value, str)]
    if strange:
        raise Nb2PipeError(f"{what} must be texts; found a {type(strange[0]).__name__}: {strange[0]!r}")
    return values


def model_kind(model: Any) -> str:
    """``keras`` (called directly, batch by batch), ``pyfunc`` (an MLflow model: takes a
    DataFrame) or ``estimator`` (anything else with ``predict``: scikit-learn and the like)."""
    if is_keras(model):
        return "keras"
    if _library(model) == "mlflow":
        return "pyfunc"
    if not callable(getattr(model, "predict", None)):
        raise Nb2PipeError(
            f"cannot explain a {type(model).__name__}: it has no predict method; pass a fitted scikit-learn "
            "estimator or pipeline, a Keras model or an MLflow model"
        )
    return "estimator"


def is_keras(model: Any) -> bool:
    return any(_root(cls) in ("keras", "tf_keras") for cls in type(model).__mro__) and hasattr(model, "layers")


def keras_module(model: Any) -> Any:
    """The Keras the model was built with: Keras 3 or the legacy tf_keras."""
    root = next(_root(cls) for cls in type(model).__mro__ if _root(cls) in ("keras", "tf_keras"))
    return sys.modules[root]


def _root(cls: type) -> str:
    return cls.__module__.split(".")[0]


def _library(value: Any) -> str:
    return _root(type(value))


def keras_outputs(model: Any, inputs: Any) -> Any:
    """The model's outputs as a numpy array, called in chunks (``predict`` costs a tracing
    step per call; a direct call does not)."""
    import numpy

    chunks = [
        numpy.asarray(model(inputs[start : start + KERAS_CHUNK], training=False))
        for start in range(0, len(inputs), KERAS_CHUNK)
    ]
    return numpy.concatenate(chunks) if chunks else numpy.empty((0,))


def keras_text_input(model: Any, texts: list[str]) -> Any:
    """Strings as a Keras string model takes them: a tensor (Keras 3 takes no numpy strings),
    shaped (N, 1) or (N,) like the model's input."""
    import tensorflow

    tensor = tensorflow.constant(texts, dtype=tensorflow.string)
    shape = getattr(model, "input_shape", None)
    return tensor[:, tensorflow.newaxis] if isinstance(shape, tuple) and len(shape) == 2 else tensor


def predictor_for(model: Any, form: InputForm) -> Callable[[Any], Any]:
    """A function from one of alibi's batches to the model's predicted labels (1-D)."""
    kind = model_kind(model)
    if kind == "keras":

        def predict_keras(batch: Any) -> Any:
            rows = form.model_rows(batch, kind)
            inputs = keras_text_input(model, rows) if form.modality == TEXT else rows
            return labels_of(keras_outputs(model, inputs), threshold=True)

        return predict_keras

    if kind == "estimator" and form.modality == TABULAR and form.columns and not form.categories and not form.dtypes:
        from nb2pipe.lifecycle.predictor import answers_matrices_like_frames

        if answers_matrices_like_frames(model, list(form.columns)):
            # a float matrix skips building a frame per batch: an anchor search makes ~100 calls

            def predict_matrix(batch: Any) -> Any:
                import numpy

                return labels_of(model.predict(numpy.asarray(batch, dtype=numpy.float64)), threshold=False)

            return predict_matrix

    def predict(batch: Any) -> Any:
        return labels_of(model.predict(form.model_rows(batch, kind)), threshold=False)

    return predict


def labels_of(outputs: Any, *, threshold: bool) -> Any:
    """Predicted labels from a model's outputs: the argmax of class scores; with
    ``threshold`` (one sigmoid output of a Keras model), whether it is above 0.5."""
    import numpy

    values = numpy.asarray(outputs)
    if values.ndim == 2 and values.shape[1] > 1:
        return values.argmax(axis=1)
    values = values.reshape(len(values))
    return (values > 0.5).astype(int) if threshold else values
