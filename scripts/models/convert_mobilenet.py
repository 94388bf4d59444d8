#!/usr/bin/env python3
"""Convert torchvision's MobileNetV2 weights (mobilenet_v2-b0353104.pth) to ONNX, without torch.

The .pth is torch's *legacy* (pre-1.6, non-zip) serialization:
  pickle(magic number) pickle(protocol version) pickle(sys_info)
  pickle(state_dict)   -- tensors are persistent_id tuples
                          ('storage', storage_type, key, location, numel, view_metadata)
                          wrapped in torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
  pickle(list of storage keys)
  for each key: int64 LE element count, then raw little-endian element data.
It is parsed here with a restricted Unpickler (only the handful of globals that appear
are allowed) and rebuilt into numpy arrays with explicit strides.

The graph is torchvision's MobileNetV2 (width 1.0) with BatchNorm folded into the conv
weights/bias (eps 1e-5), ReLU6 as Clip(0, 6) (opset 13, min/max as inputs), depthwise
convs with group=channels, and the residual Add where stride == 1 and in == out.

Model I/O contract:
  input      `input`      float32 [N, 3, 224, 224]   (N dynamic, dim_param "N")
  output     `embedding`  float32 [N, 1280]  GlobalAveragePool + Flatten of the last
                                             feature map; NOT L2-normalised.
  output     `logits`     float32 [N, 1000]  ImageNet classifier (Gemm; no softmax).

Preprocessing expected (the torchvision ImageNet contract):
  RGB (not BGR), resize to 224x224, x / 255, per channel (x - mean) / std with
  mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225], layout NCHW float32.

Usage: convert_mobilenet.py WEIGHTS.pth OUT.onnx [--print-keys]
The output is byte-deterministic for a given onnx/numpy version (fixed names, no
timestamps, explicit ir_version / opset / producer fields).
"""
import argparse
import pickle
import struct
import sys
from collections import OrderedDict

import numpy as np

BN_EPS = 1e-5
IR_VERSION = 8
OPSET = 13

# ---------------------------------------------------------------------------
# Legacy torch serialization reader
# ---------------------------------------------------------------------------

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    def __init__(self, name):
        if name not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage type torch.{name}")
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """Placeholder for a storage whose bytes come after the pickles."""

    def __init__(self, key, stype, numel):
        self.key = key
        self.dtype = stype.dtype
        self.numel = numel
        self.data = None  # filled in later


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def materialize(self):
        buf = self.storage.data
        if buf is None:
            raise ValueError(f"storage {self.storage.key} never read")
        item = buf.dtype.itemsize
        if self.size:
            last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride))
            if min(self.size) > 0 and last >= buf.size:
                raise ValueError(f"tensor view out of bounds for storage {self.storage.key}")
        arr = np.ndarray(
            shape=self.size,
            dtype=buf.dtype,
            buffer=buf,
            offset=self.offset * item,
            strides=tuple(st * item for st in self.stride),
        )
        return np.ascontiguousarray(arr)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _LazyTensor(storage, storage_offset, size, stride)


class _LegacyUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self._storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_tensor":
            return _rebuild_tensor
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, stype, key, _location, numel, view_metadata = pid
        if view_metadata is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        st = self._storages.get(key)
        if st is None:
            st = _Storage(key, stype, numel)
            self._storages[key] = st
        return st


def load_legacy_state_dict(path):
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if head[:2] == b"PK":
            raise ValueError(f"{path}: zip-format checkpoint, expected legacy format")
        magic = pickle.load(f)
        if magic != LEGACY_MAGIC:
            raise ValueError(f"{path}: bad magic number {magic!r}")
        protocol = pickle.load(f)
        if protocol != 1001:
            raise ValueError(f"{path}: unsupported protocol version {protocol}")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoint not supported")
        storages = {}
        obj = _LegacyUnpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            st = storages[key]
            if numel != st.numel:
                raise ValueError(f"storage {key}: size {numel} != declared {st.numel}")
            nbytes = numel * st.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"storage {key}: truncated data")
            st.data = np.frombuffer(raw, dtype=st.dtype)
        if f.read(1):
            raise ValueError(f"{path}: trailing bytes after last storage")
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: top-level object is {type(obj).__name__}, expected a dict")
    out = OrderedDict()
    for k, v in obj.items():
        if isinstance(v, _LazyTensor):
            out[k] = v.materialize()
        else:
            out[k] = v  # e.g. num_batches_tracked would be a tensor too; keep anything else as-is
    return out


# ---------------------------------------------------------------------------
# MobileNetV2 architecture (torchvision, width_mult=1.0)
# ---------------------------------------------------------------------------

INVERTED_RESIDUAL_SETTING = [
    # t, c, n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def mobilenet_v2_layers():
    """Return a list of blocks; each block is a dict with a list of conv specs.

    conv spec: (conv_weight_key, bn_prefix, stride, groups, relu6)
    """
    blocks = []
    # features.0: ConvBNReLU 3 -> 32, stride 2
    blocks.append({"residual": False,
                   "convs": [("features.0.0.weight", "features.0.1", 2, 1, True)],
                   "in": 3, "out": 32})
    in_c = 32
    idx = 1
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = in_c * t
            p = f"features.{idx}.conv"
            convs = []
            if t != 1:
                # expand: conv.0 = ConvBNReLU(in, hidden, 1x1)
                convs.append((f"{p}.0.0.weight", f"{p}.0.1", 1, 1, True))
                dw = f"{p}.1"
                pw_w, pw_bn = f"{p}.2.weight", f"{p}.3"
            else:
                dw = f"{p}.0"
                pw_w, pw_bn = f"{p}.1.weight", f"{p}.2"
            convs.append((f"{dw}.0.weight", f"{dw}.1", stride, hidden, True))  # depthwise 3x3
            convs.append((pw_w, pw_bn, 1, 1, False))  # linear pointwise projection
            blocks.append({"residual": stride == 1 and in_c == c, "convs": convs,
                           "in": in_c, "out": c})
            in_c = c
            idx += 1
    # features.18: ConvBNReLU 320 -> 1280, 1x1
    blocks.append({"residual": False,
                   "convs": [(f"features.{idx}.0.weight", f"features.{idx}.1", 1, 1, True)],
                   "in": in_c, "out": 1280})
    assert idx == 18
    return blocks


def fold_bn(w, sd, bn):
    gamma = sd[f"{bn}.weight"].astype(np.float64)
    beta = sd[f"{bn}.bias"].astype(np.float64)
    mean = sd[f"{bn}.running_mean"].astype(np.float64)
    var = sd[f"{bn}.running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPS)
    wf = (w.astype(np.float64) * scale[:, None, None, None]).astype(np.float32)
    bf = (beta - mean * scale).astype(np.float32)
    return wf, bf


def check_state_dict(sd):
    blocks = mobilenet_v2_layers()
    expected = set()
    for b in blocks:
        for wk, bn, _, _, _ in b["convs"]:
            expected.add(wk)
            for s in ("weight", "bias", "running_mean", "running_var"):
                expected.add(f"{bn}.{s}")
    expected |= {"classifier.1.weight", "classifier.1.bias"}
    got = {k for k in sd if not k.endswith("num_batches_tracked")}
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    if missing or extra:
        raise ValueError(f"state-dict mismatch: missing={missing[:8]} extra={extra[:8]}")


def build_onnx(sd):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    check_state_dict(sd)
    initializers = []
    nodes = []

    def add_init(name, arr):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    clip_min = add_init("relu6_min", np.array(0.0, dtype=np.float32))
    clip_max = add_init("relu6_max", np.array(6.0, dtype=np.float32))

    x = "input"
    n_conv = 0
    for bi, block in enumerate(mobilenet_v2_layers()):
        block_in = x
        for wk, bn, stride, groups, relu6 in block["convs"]:
            w = sd[wk]
            wf, bf = fold_bn(w, sd, bn)
            k = w.shape[2]
            pad = (k - 1) // 2
            cname = f"conv{n_conv}"
            wn = add_init(f"{cname}.weight", wf)
            bname = add_init(f"{cname}.bias", bf)
            y = f"{cname}.out"
            nodes.append(helper.make_node(
                "Conv", [x, wn, bname], [y], name=cname,
                kernel_shape=[k, k], strides=[stride, stride],
                pads=[pad, pad, pad, pad], dilations=[1, 1], group=groups))
            x = y
            if relu6:
                y = f"{cname}.relu6"
                nodes.append(helper.make_node("Clip", [x, clip_min, clip_max], [y],
                                              name=f"{cname}_relu6"))
                x = y
            n_conv += 1
        if block["residual"]:
            y = f"block{bi}.add"
            nodes.append(helper.make_node("Add", [block_in, x], [y], name=f"block{bi}_add"))
            x = y

    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["embedding"], name="flatten", axis=1))
    fc_w = add_init("classifier.weight", sd["classifier.1.weight"].astype(np.float32))
    fc_b = add_init("classifier.bias", sd["classifier.1.bias"].astype(np.float32))
    # classifier = Dropout(0.2) (identity at inference) + Linear(1280, 1000)
    nodes.append(helper.make_node("Gemm", ["embedding", fc_w, fc_b], ["logits"],
                                  name="classifier", alpha=1.0, beta=1.0, transB=1))

    graph = helper.make_graph(
        nodes, "mobilenet_v2",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        outputs=[helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 1280]),
                 helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="dajia-convert_mobilenet",
        producer_version="1",
        doc_string=("torchvision MobileNetV2 (mobilenet_v2-b0353104.pth), BN folded. "
                    "Input RGB 224x224, x/255, mean [0.485,0.456,0.406], "
                    "std [0.229,0.224,0.225], NCHW float32."),
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights")
    ap.add_argument("output", nargs="?")
    ap.add_argument("--print-keys", action="store_true", help="list state-dict keys and shapes")
    args = ap.parse_args(argv)

    sd = load_legacy_state_dict(args.weights)
    if args.print_keys:
        for k, v in sd.items():
            shape = getattr(v, "shape", None)
            dtype = getattr(v, "dtype", type(v).__name__)
            print(f"{k}\t{shape}\t{dtype}")
    if args.output:
        import onnx
        model = build_onnx(sd)
        data = model.SerializeToString(deterministic=True)
        tmp = args.output + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        import os
        os.replace(tmp, args.output)
        print(f"wrote {args.output} ({len(data)} bytes, {len(model.graph.node)} nodes)",
              file=sys.stderr)
    elif not args.print_keys:
        ap.error("need OUTPUT or --print-keys")
    return 0


if __name__ == "__main__":
    sys.exit(main())
