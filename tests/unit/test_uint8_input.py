"""Unit test of benchmarks/uint8_input.py's graph derivation: a model whose float input is
replaced by a uint8 image and the letterbox's normalisation sees exactly what to_blob makes."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from benchmarks.uint8_input import uint8_graph
from triton_python.letterbox import to_blob

SIZE = 8


def identity_model() -> onnx.ModelProto:
    """A network that returns its float N×3×S×S input: what it sees is what it returns."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input.1"], ["seen"])], "identity",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("seen", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_the_derived_graph_sees_the_letterbox_blob():
    model, name = uint8_graph(identity_model(), SIZE, 127.5, 128.0)
    assert [i.name for i in model.graph.input] == [name]
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    canvases = np.random.default_rng(7).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    seen = session.run(None, {name: canvases})[0]
    expected = np.stack([to_blob(canvas, 127.5, 128.0, swap_rb=False) for canvas in canvases])
    assert seen.shape == (2, 3, SIZE, SIZE)
    np.testing.assert_allclose(seen, expected, rtol=0, atol=1e-6)
