"""The feature encoder's convolutions after the first, rewritten in an OpenVINO model as matrix products over
windows of frames, so that int8 can take them without losing accuracy.

Quantised statically (one activation scale per tensor, calibrated), these convolutions cost the trained model
1.5 to 5.5 CER points: their inputs span a wide range over time (80% of the second one's input lies below 1% of
its maximum). As matrix products with int8 weights, OpenVINO's CPU plugin quantises their inputs as they run, a
scale per group of channels of each frame (dynamic quantisation), and runs int8 dot products: within 0.2 CER
points of fp32 on every speaker set, and the whole model 1.2x faster where its float ops are fp32 on AVX-512
(without bf16), once a run's largest bin has paid a one-time cost (docs/performance.md). The first convolution
(one input channel, kernel 10) stays as it is: too little work to gain anything.
"""

import math
import re

import numpy as np
import openvino
from openvino import opset13 as ops

CONVOLUTION = re.compile(
    r"(?P<scope>.*/feature_extractor/(?:conv_layers\.)?(?P<layer>\d+)/)conv/Conv(?:/WithoutBiases)?"
)
"""The feature encoder's convolutions in our ONNX export, with their layer's scope and number (TorchScript names
the layers `conv_layers.N` or `N`, and OpenVINO splits a bias off as an Add)."""
POINTWISE = frozenset({"Add", "Subtract", "Multiply", "Divide", "Erf", "Gelu", "Tanh", "Power", "Sqrt"})
"""What a layer may hold besides its convolution to be rewritten: its activation, which takes frames in any
layout. A layer norm or a bias acts on the channel axis, which the rewrite moves: such models keep the
convolutions (group-norm models such as base-960h have neither after the first layer)."""
MAX_GROUP_CHANNELS = 64
"""At most this many channels of a frame share one dynamic int8 scale (OpenVINO's group size): 1.3x faster than
fp32 on a wav2vec2-base bin, as fast as 128 or 256, faster than 32 or 512 (AVX-512 VNNI)."""


def rewrite(model: openvino.Model) -> int:
    """Replace convolutions 2.. of the feature encoder in `model` by frame-window MatMuls (fp32 weights, for
    NNCF to compress), channels-last from the second to the last; record in the model the dynamic quantisation
    group size the plugin is to use, and return it; 0 where the model's layers cannot be rewritten (unchanged)."""
    nodes = model.get_ordered_ops()
    convolutions = sorted(
        (int(match["layer"]), match["scope"], node) for node in nodes
        if node.get_type_name() == "Convolution" and (match := CONVOLUTION.fullmatch(node.get_friendly_name()))
    )  # fmt: skip
    layers = [[node for node in nodes if node.get_friendly_name().startswith(scope)]  # by the export's scope names
              for _, scope, _ in convolutions[1:]]
    rewritten = [node for *_, node in convolutions[1:]]
    leaving = _leaving(layers[-1]) if layers else None
    if leaving is None or not all(map(_plain, rewritten)) or not all(map(_pointwise, layers)):
        return 0
    channels = []
    for position, node in enumerate(rewritten):
        frames = node.input_value(0)  # [B, C, T] into the first, [B, T, C] (the previous MatMul's) after it
        if position == 0:
            frames = ops.transpose(frames, _i64(0, 2, 1)).output(0)
        weight = node.input_value(1).get_node().get_data()
        windows = _windows(frames, weight.shape[2], node.get_strides()[0])
        matmul = ops.matmul(windows, _window_weight(weight), transpose_a=False, transpose_b=True)
        matmul.set_friendly_name(node.get_friendly_name())
        node.output(0).replace(matmul.output(0))
        channels.append(weight.shape[1])
    users = list(leaving.output(0).get_target_inputs())
    channels_first = ops.transpose(leaving.output(0), _i64(0, 2, 1))
    for user in users:
        user.replace_source_output(channels_first.output(0))
    model.validate_nodes_and_infer_types()
    group = math.gcd(MAX_GROUP_CHANNELS, *channels)
    model.set_rt_info(str(group), ["runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE"])
    return group


def _windows(frames: openvino.Output, kernel: int, stride: int) -> openvino.Node:
    """[B, T, C] -> [B, T', kernel * C]: row t holds frames stride*t .. stride*t + kernel - 1 (one Gather)."""
    length = ops.gather(ops.shape_of(frames), _scalar(1), _scalar(0))
    count = ops.add(ops.divide(ops.subtract(length, _scalar(kernel)), _scalar(stride)), _scalar(1))  # T >= kernel
    starts = ops.multiply(ops.range(_scalar(0), count, _scalar(1), openvino.Type.i64), _scalar(stride))
    indices = ops.add(ops.unsqueeze(starts, _i64(1)), _i64(*range(kernel)))  # [T', kernel]
    return ops.reshape(ops.gather(frames, indices, _i64(1)), _i64(0, 0, -1), special_zero=True)


def _window_weight(weight: np.ndarray) -> np.ndarray:
    """A Conv1d weight [out, in, kernel] as the matrix [out, kernel * in] that `_windows`' rows multiply."""
    out_channels, in_channels, kernel = weight.shape
    return np.ascontiguousarray(weight.transpose(0, 2, 1).reshape(out_channels, kernel * in_channels), np.float32)


def _pointwise(layer: list[openvino.Node]) -> bool:
    """Whether all but the layer's convolution are pointwise ops on its frames and scalar constants."""
    names = {node.get_friendly_name() for node in layer}
    rest = [node for node in layer if node.get_type_name() not in ("Convolution", "Constant")]
    return len(rest) < len(layer) and all(
        node.get_type_name() in POINTWISE and all(_inside_or_scalar(source.get_node(), names)
                                                  for source in node.input_values())
        for node in rest
    )  # fmt: skip


def _inside_or_scalar(node: openvino.Node, names: set[str]) -> bool:
    if node.get_type_name() == "Constant":
        return math.prod(node.get_output_shape(0)) <= 1
    return node.get_friendly_name() in names


def _plain(convolution: openvino.Node) -> bool:
    """Whether a convolution is one that `_windows` and `_window_weight` compute: unpadded, undilated, 1-d, with
    its weight at hand."""
    return (convolution.input_value(1).get_node().get_type_name() == "Constant"
            and len(convolution.get_strides()) == 1 and set(convolution.get_dilations()) == {1}
            and set(convolution.get_pads_begin()) | set(convolution.get_pads_end()) == {0})  # fmt: skip


def _leaving(layer: list[openvino.Node]) -> openvino.Node | None:
    """The one node through which a layer's output leaves it (None where there are more)."""
    names = {node.get_friendly_name() for node in layer}
    leaving = [node for node in layer
               if any(user.get_node().get_friendly_name() not in names for user in node.output(0).get_target_inputs())]
    return leaving[0] if len(leaving) == 1 else None


def _scalar(value: int) -> openvino.Node:
    return ops.constant(np.int64(value))


def _i64(*values: int) -> openvino.Node:
    return ops.constant(np.array(values, np.int64))
