"""The ``kserve.Model`` that ``nb2pipe serve`` holds: an MLflow model, loaded once, answering the
v1 protocol (``/v1/models/NAME:predict``), the v2 Open Inference Protocol
(``/v2/models/NAME/infer``: requested outputs and binary outputs included) and, with an
explainer (Anchor or Integrated Gradients), ``/v1/models/NAME:explain``.

KServe defines the template: ``load`` once, ``predict`` per request; the class is built on first
use (:func:`model_class`) so kserve loads only when serving.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

from nb2pipe.lifecycle.batcher import BatchPolicy, BatchQueueFull, BatchTimeout, MicroBatcher
from nb2pipe.lifecycle.calling import OUTPUT_NAME, metadata_tensors, model_signature, output_tensors, signature_specs
from nb2pipe.lifecycle.explainer import MAX_EXPLAINED_ROWS, ExplainerBuilder, ServedExplainer
from nb2pipe.lifecycle.predictor import BadPayload, Predictor
from nb2pipe.lifecycle.torch_model import load_for_serving
from nb2pipe.store.payloads import PayloadLog
from nb2pipe.store.registry import input_columns, load_native, resolve_model


def kserve_module() -> Any:
    """Import kserve without letting its import-time argv parsing see nb2pipe's arguments."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve
    finally:
        sys.argv = saved
    return kserve


def model_class() -> type:
    """The ``kserve.Model`` subclass; built on first use so kserve loads only when serving."""
    kserve = kserve_module()
    from kserve.errors import InvalidInput, ServerNotReady
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse, RequestedOutput

    class MlflowModel(kserve.Model):  # type: ignore[name-defined]
        """Template method as KServe defines it: ``load`` once, ``predict`` per request."""

        def __init__(
            self,
            name: str,
            model_uri: str,
            payload_dir: str | None = None,
            explainer: str | None = None,
            reference: str | None = None,
            build_explainer: ExplainerBuilder | None = None,
            batching: BatchPolicy | None = None,
        ) -> None:
            super().__init__(name)
            self.batching = batching
            self.batcher: MicroBatcher | None = None
            self.model_uri = model_uri
            self.payload_dir = payload_dir
            self.explainer_method = explainer
            self.reference_path = reference
            self.build_explainer = build_explainer
            self.predictor: Predictor | None = None
            self.payloads: PayloadLog | None = None
            self.version: str | None = None
            self.explainer: ServedExplainer | None = None
            self.input_types: list[dict[str, Any]] = []
            self.output_types: list[dict[str, Any]] = []

        def load(self) -> bool:
            source = resolve_model(self.model_uri)
            columns, types = input_columns(source)
            native = load_for_serving(source) if source.flavor == "pytorch" else load_native(source)
            self.predictor = Predictor.build(native, columns, types)
            signature = model_signature(source)
            if signature is not None:
                self.input_types = metadata_tensors(signature_specs(signature.inputs))
                self.output_types = output_tensors(signature_specs(signature.outputs))
            if not self.input_types:
                self.input_types = _inputs_without_signature(self.predictor)
            if not self.output_types:
                self.output_types = _output_without_signature(self.predictor)
            self.version = source.version
            if self.batching is not None:
                self.batcher = MicroBatcher(self.batching, self.predictor.predict, reject=BadPayload)
            if self.explainer_method:
                self.explainer = ServedExplainer.build(
                    self.explainer_method, source, self.predictor.model, self.reference_path, self.build_explainer
                )
            if self.payload_dir:
                self.payloads = PayloadLog(self.payload_dir, self.name, source.version)
            self.ready = True
            return True

        def get_input_types(self) -> list[dict[str, Any]]:
            # KServe's dataplane answers GET /v2/models/NAME with these (Open Inference Protocol metadata)
            return self.input_types

        def get_output_types(self) -> list[dict[str, Any]]:
            return self.output_types

        def record_rejection(self, protocol: str, reason: str, body: bytes | None) -> None:
            if self.payloads is not None:
                self.payloads.append_rejected(protocol, reason, body)

        async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            predictor = self.predictor
            assert predictor is not None, "load() runs before the server starts"
            try:
                if isinstance(payload, InferRequest):
                    return await self._predict_v2(predictor, payload)
                rows = predictor.rows_from_v1(payload)
                predictions = await self._predict_table(predictor, predictor.table(rows))
            except BadPayload as exc:
                raise InvalidInput(str(exc)) from None
            if self.payloads:
                self.payloads.append("v1", predictor.columns, rows, predictions)
            return {"predictions": predictions}

        async def _predict_table(self, predictor: Predictor, table: Any) -> list[Any]:
            if self.batcher is None:
                return predictor.predict(table)
            try:
                return await self.batcher.submit(table)
            except (BatchQueueFull, BatchTimeout) as exc:
                raise ServerNotReady(str(exc)) from None  # 503: overloaded, a client retries

        async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            predictor, explainer = self.predictor, self.explainer
            assert predictor is not None, "load() runs before the server starts"
            if explainer is None:
                raise InvalidInput(f"{self.name} serves no explainer: start it with --explainer anchor or ig")
            try:
                rows = predictor.rows_from_v1(payload)
                if not rows:
                    raise BadPayload("no rows to explain")
                if len(rows) > MAX_EXPLAINED_ROWS:
                    raise BadPayload(f"{len(rows)} rows to explain; send at most {MAX_EXPLAINED_ROWS} per request")
                # an explanation takes a fraction of a second: keep the event loop answering :predict
                answer = await asyncio.to_thread(explainer.explain, predictor, rows)
            except BadPayload as exc:
                raise InvalidInput(str(exc)) from None
            return {"model_name": self.name, "model_version": self.version, **answer}

        async def _predict_v2(self, predictor: Predictor, request: Any) -> Any:
            requested = _requested_outputs(request, RequestedOutput)
            tensors = []
            for item in request.inputs:
                tensors.append((item.name, list(item.shape), _tensor_data(item)))
            table = predictor.rows_from_tensors(tensors)
            predictions = await self._predict_table(predictor, table)
            if self.payloads:
                rows = table.values.tolist() if hasattr(table, "values") else table.tolist()
                self.payloads.append("v2", predictor.columns, rows, predictions)
            values = _as_array(predictions)  # [N], or [N, K] for a model answering K values a row
            output = InferOutput(name=OUTPUT_NAME, shape=list(values.shape), datatype=_datatype(predictions))
            output.set_data_from_numpy(values, binary_data=False)
            return InferResponse(
                response_id=request.id or str(uuid.uuid4()),  # None makes KServe answer 500
                model_name=self.name,
                model_version=self.version,
                infer_outputs=[output],
                use_binary_outputs=bool(request.use_binary_outputs),
                requested_outputs=requested,
            )

    return MlflowModel


def _requested_outputs(request: Any, requested_output: type) -> list[Any] | None:
    """The request's ``outputs`` (this server has one, ``predict``); each says binary or JSON,
    defaulting to the request's ``binary_data_output`` as the protocol's extension does."""
    wanted = request.request_outputs
    if not wanted:
        return None
    default = bool(request.use_binary_outputs)
    chosen = []
    for output in wanted:
        if output.name != OUTPUT_NAME:
            raise BadPayload(f"unknown output {output.name!r}: this model answers one output, {OUTPUT_NAME!r}")
        binary = default if output.binary_data is None else bool(output.binary_data)
        chosen.append(requested_output(output.name, {**(output.parameters or {}), "binary_data": binary}))
    return chosen


def _tensor_data(item: Any) -> Any:
    """A v2 input's data as numpy; an integer tensor whose JSON data holds other numbers is refused
    (numpy would cut 1.5 to 1 and make True a 1)."""
    import numpy as np

    try:
        data = item.as_numpy()
    except Exception as exc:  # kserve raises bare Exception/ValueError for bad tensors
        raise BadPayload(f"input {item.name!r}: {exc}") from None
    if data.dtype.kind in "iu" and isinstance(item.data, list):
        sent = np.asarray(item.data)  # as JSON held it
        if sent.size and sent.dtype.kind not in "iu":
            raise BadPayload(f"input {item.name!r} is {item.datatype} but its data holds values other than integers")
    return data


def _inputs_without_signature(predictor: Predictor) -> list[dict[str, Any]]:
    """Metadata for a model logged without a signature: its columns, or one [-1, F] table."""
    if predictor.columns:
        kind = "FP64" if predictor.numeric else "BYTES"
        return [{"name": column, "datatype": kind, "shape": [-1]} for column in predictor.columns]
    if predictor.features is not None:
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, predictor.features]}]
    return []


def _output_without_signature(predictor: Predictor) -> list[dict[str, Any]]:
    """The output's type for a model logged without a signature, from one all-zero row (numeric
    models only: a zero is a valid value of every numeric column)."""
    if not predictor.numeric or not predictor.features:
        return []
    try:
        predictions = predictor.predict(predictor.table([[0.0] * predictor.features]))
    except BadPayload:
        return []
    return [{"name": OUTPUT_NAME, "datatype": _datatype(predictions), "shape": [-1]}]


def _datatype(values: list[Any]) -> str:
    sample = values[0] if values else 0.0
    if isinstance(sample, list) and _numeric_rows(values):
        sample = sample[0]  # rows of K numbers: the numbers' type
    if isinstance(sample, bool):
        return "BOOL"
    if isinstance(sample, int):
        return "INT64"
    if isinstance(sample, float):
        return "FP64"
    return "BYTES"


def _as_array(values: list[Any]) -> Any:
    import numpy as np

    kind = _datatype(values)
    if kind == "BYTES":
        return np.asarray([str(v) for v in values], dtype=object)
    return np.asarray(values, dtype={"BOOL": bool, "INT64": np.int64, "FP64": np.float64}[kind])


def _numeric_rows(values: list[Any]) -> bool:
    """Whether ``values`` are rows of K floats, or of K ints (a model's K outputs a row): one
    [N, K] tensor; ragged or mixed rows are not."""
    first = values[0]
    if not first or type(first[0]) not in (int, float):
        return False
    kind, width = type(first[0]), len(first)
    return all(isinstance(row, list) and len(row) == width and all(type(v) is kind for v in row) for row in values)
