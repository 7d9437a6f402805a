#!/usr/bin/env python3
"""Generates colorbox.onnx: a tiny hand-weighted detector with known behaviour.

It is a real ONNX model (opset 17, ~10 operators, no trained weights) that
wardstream's tests run through ONNX Runtime in place of a YOLO network:

  input  "images"  float32 [1, 3, 320, 320], RGB in [0, 1] (YOLOv8 layout)
  output "output0" float32 [1, 6, 1600]     (YOLOv8 layout: cx, cy, w, h, C=2 class scores)

Class 0 "person" is a saturated red region (R - (G+B)/2 > ~0.35), class 1
"equipment" a saturated green one. For each of the 40x40 cells (stride 8)
the score of a class is 0.95 x the fraction of the cell covered by its
mask, and the box is the extent of all masked pixels in a 160x160 window
around the cell (a 4x4 max pool, then separable max pools over coordinate maps). Every cell
inside one rectangle therefore predicts that rectangle, and NMS must merge
them, exactly like a YOLO head. Rectangles farther apart than ~80 px are
detected separately.

Metadata follows Ultralytics' export: names = "{0: 'person', 1: 'equipment'}",
imgsz = "[320, 320]", task = "detect", plus version.

Run: pip install onnx==1.19.1 numpy && python3 gen.py  (writes colorbox.onnx
next to this file; the output is byte-for-byte reproducible).
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

S = 320        # input side
STRIDE = 8     # cell size
G = S // STRIDE
WIN = 160      # box window, centred on the cell: objects up to ~150 px (model space)
VERSION = "1.0.0"


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def main():
    inits = []
    nodes = []
    # 1x1 conv: two mask logits. red = 10R - 5G - 5B - 3.5; green = 10G - 5R - 5B - 3.5
    w = np.array([[10, -5, -5], [-5, 10, -5]], dtype=np.float32).reshape(2, 3, 1, 1)
    inits += [const("mask_w", w), const("mask_b", [-3.5, -3.5])]
    nodes.append(helper.make_node("Conv", ["images", "mask_w", "mask_b"], ["logits"]))
    inits += [const("zero", 0.0), const("one", 1.0)]
    nodes.append(helper.make_node("Clip", ["logits", "zero", "one"], ["masks"]))  # [1,2,S,S]
    # union mask for boxes
    nodes.append(helper.make_node("ReduceMax", ["masks"], ["any"], axes=[1], keepdims=1))
    # coordinate maps x+1, S-x, y+1, S-y broadcast over the union mask -> [1,4,S,S]
    xs = np.arange(S, dtype=np.float32)
    for name, arr in [("cx2", (xs + 1).reshape(1, 1, 1, S)), ("cx1", (S - xs).reshape(1, 1, 1, S)),
                      ("cy2", (xs + 1).reshape(1, 1, S, 1)), ("cy1", (S - xs).reshape(1, 1, S, 1))]:
        inits.append(const(name, arr))
        nodes.append(helper.make_node("Mul", ["any", name], ["m_" + name]))
    nodes.append(helper.make_node("Concat", ["m_cx2", "m_cx1", "m_cy2", "m_cy1"], ["masked"], axis=1))
    # Max pooling commutes with taking the extent, so we first pool the
    # masked coordinate maps 4x4 (exact: the max of x+1 over a block is the
    # max over its masked pixels) and then run the separable window pool at
    # 80x80: cell j (pixels [8j, 8j+7]) gets blocks [2j-19, 2j+21), i.e.
    # pixels [8j-76, 8j+84), a 160 px window centred on the cell. This
    # keeps the model at ~1 ms per frame on one core.
    nodes.append(helper.make_node("MaxPool", ["masked"], ["blocks"], kernel_shape=[4, 4], strides=[4, 4]))
    kb = WIN // 4                      # 40 blocks
    pb, pe = 19, 20
    nodes.append(helper.make_node("MaxPool", ["blocks"], ["hpool"], kernel_shape=[1, kb],
                                  strides=[1, 2], pads=[0, pb, 0, pe]))
    nodes.append(helper.make_node("MaxPool", ["hpool"], ["ext"], kernel_shape=[kb, 1],
                                  strides=[2, 1], pads=[pb, 0, pe, 0]))
    # ext channels: x2, S-x1, y2, S-y1 -> x1 = S - ext1, y1 = S - ext3
    # cx = (x2 + x1)/2 = (ext0 - ext1 + S)/2 ; w = x2 - x1 = ext0 + ext1 - S
    m = np.array([
        [0.5, -0.5, 0, 0],
        [0, 0, 0.5, -0.5],
        [1, 1, 0, 0],
        [0, 0, 1, 1],
    ], dtype=np.float32).reshape(4, 4, 1, 1)
    inits += [const("box_w", m), const("box_b", [S / 2, S / 2, -S, -S])]
    nodes.append(helper.make_node("Conv", ["ext", "box_w", "box_b"], ["box_raw"]))
    nodes.append(helper.make_node("Relu", ["box_raw"], ["box"]))  # empty windows give w,h<=0 -> 0
    # class scores: 0.95 x coverage of each cell
    nodes.append(helper.make_node("AveragePool", ["masks"], ["cover"], kernel_shape=[STRIDE, STRIDE],
                                  strides=[STRIDE, STRIDE]))
    inits.append(const("score_scale", 0.95))
    nodes.append(helper.make_node("Mul", ["cover", "score_scale"], ["scores"]))
    nodes.append(helper.make_node("Concat", ["box", "scores"], ["head"], axis=1))  # [1,6,G,G]
    inits.append(numpy_helper.from_array(np.array([1, 6, G * G], dtype=np.int64), "out_shape"))
    nodes.append(helper.make_node("Reshape", ["head", "out_shape"], ["output0"]))

    graph = helper.make_graph(
        nodes, "colorbox",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, S, S])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, G * G])],
        inits,
    )
    model = helper.make_model(graph, producer_name="wardstream-testmodel", producer_version=VERSION,
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.doc_string = "colorbox: red rectangles are 'person', green ones 'equipment' (wardstream test model)"
    for k, v in [("names", "{0: 'person', 1: 'equipment'}"), ("imgsz", f"[{S}, {S}]"),
                 ("task", "detect"), ("stride", str(STRIDE)), ("version", VERSION),
                 ("description", "wardstream colorbox test detector")]:
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model, full_check=True)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "colorbox.onnx")
    with open(out, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))
    print(out)


if __name__ == "__main__":
    main()
