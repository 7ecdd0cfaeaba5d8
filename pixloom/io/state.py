"""Nested training state <-> (flat tensor dict, JSON skeleton), so resume never unpickles.

Training state (optimizer, scheduler, step, RNG states, data position, ...) is a tree of
dicts, lists and tuples whose leaves are tensors, numpy arrays, ints, floats, bools, strings
and None; dict keys are str or int (torch optimizers key their state by int). `flatten_state`
moves every tensor into a flat dict (saved as safetensors) and describes the rest as a JSON
skeleton of tagged nodes; `unflatten_state` rebuilds the exact tree. Floats are stored as
`float.hex()` so nan, inf and every bit of the value survive; ints keep Python's precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pixloom.errors import CheckpointError, InvalidValue

SKELETON_FORMAT = "pixloom-state"
SKELETON_VERSION = 1
_MAX_DEPTH = 64  # deeper trees are a bug (or a crafted file), not training state


def _flatten_node(value: Any, where: str, tensors: dict[str, torch.Tensor], depth: int) -> Any:
    """Tagged JSON node for `value`; tensors are appended to `tensors`."""
    if depth > _MAX_DEPTH:
        raise InvalidValue(where, type(value).__name__, f"training state nested <= {_MAX_DEPTH}")
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        value = np.asarray(value)
        scalar = True
    else:
        scalar = False
    if value is None or isinstance(value, (bool, str)):
        return {"type": "value", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": int(value)}
    if isinstance(value, float):
        return {"type": "float", "hex": float(value).hex()}
    if isinstance(value, (torch.Tensor, np.ndarray)):
        is_numpy = isinstance(value, np.ndarray)
        if is_numpy and value.dtype.hasobject:
            raise InvalidValue(where, value.dtype, "a numpy array of numbers (not objects)")
        tensor = torch.from_numpy(np.array(value, order="C")) if is_numpy else value  # keeps 0-d
        key = f"t{len(tensors)}"
        # clone() breaks storage sharing, which safetensors refuses to save
        tensors[key] = tensor.detach().to("cpu", copy=True).contiguous()
        kind = ("npscalar" if scalar else "ndarray") if is_numpy else "tensor"
        return {"type": kind, "key": key}
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise InvalidValue(f"{where}[{key!r}]", key, "a dict key of type str or int")
            items.append([key, _flatten_node(item, f"{where}[{key!r}]", tensors, depth + 1)])
        return {"type": "dict", "items": items}
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        items = [_flatten_node(v, f"{where}[{i}]", tensors, depth + 1) for i, v in enumerate(value)]
        return {"type": kind, "items": items}
    raise InvalidValue(
        where,
        type(value).__name__,
        "training state of dict/list/tuple, Tensor, numpy array or scalar, int, float, bool, str or None",
    )


def flatten_state(state: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `state` into (tensors by key, JSON-ready skeleton) that unflatten_state reverses."""
    tensors: dict[str, torch.Tensor] = {}
    root = _flatten_node(state, "training_state", tensors, 0)
    skeleton = {"format": SKELETON_FORMAT, "format_version": SKELETON_VERSION, "root": root}
    return tensors, skeleton


def _bad(where: str, problem: str) -> CheckpointError:
    return CheckpointError(f"training state skeleton is invalid at {where}: {problem}")


def _take_tensor(node: dict, where: str, tensors: dict[str, torch.Tensor], used: set) -> Any:
    key = node.get("key")
    if not isinstance(key, str) or key not in tensors:
        raise _bad(where, f"tensor key {key!r} is not in the state tensors file")
    if key in used:
        raise _bad(where, f"tensor key {key!r} is used twice")
    used.add(key)
    if node["type"] == "tensor":
        return tensors[key]
    array = tensors[key].numpy()
    if node["type"] == "npscalar":
        if array.ndim != 0:
            raise _bad(where, f"numpy scalar {key!r} has shape {array.shape}")
        return array[()]
    return array


def _unflatten_node(node: Any, where: str, tensors: dict, used: set, depth: int) -> Any:
    """Rebuild the value a tagged node describes, refusing anything malformed by path."""
    if depth > _MAX_DEPTH:
        raise _bad(where, f"nested deeper than {_MAX_DEPTH}")
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise _bad(where, "expected an object with a 'type'")
    kind = node["type"]
    if kind == "value":
        value = node.get("value")
        if value is not None and not isinstance(value, (bool, str)):
            raise _bad(where, f"'value' must be null, a bool or a string, got {value!r}")
        return value
    if kind == "int":
        value = node.get("value")
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(where, f"'value' must be an integer, got {value!r}")
        return value
    if kind == "float":
        try:
            return float.fromhex(node.get("hex"))
        except (TypeError, ValueError):
            raise _bad(
                where, f"'hex' must be a float.hex() string, got {node.get('hex')!r}"
            ) from None
    if kind in ("tensor", "ndarray", "npscalar"):
        return _take_tensor(node, where, tensors, used)
    if kind not in ("list", "tuple", "dict"):
        raise _bad(where, f"unknown node type {kind!r}")
    items = node.get("items")
    if not isinstance(items, list):
        raise _bad(where, f"{kind!r} node needs an 'items' list")
    if kind in ("list", "tuple"):
        values = [
            _unflatten_node(item, f"{where}[{i}]", tensors, used, depth + 1)
            for i, item in enumerate(items)
        ]
        return tuple(values) if kind == "tuple" else values
    result = {}  # a dict node
    for pair in items:
        valid_pair = isinstance(pair, list) and len(pair) == 2
        if not valid_pair or isinstance(pair[0], bool) or not isinstance(pair[0], (str, int)):
            raise _bad(where, f"dict items must be [str|int key, node] pairs, got {pair!r:.80}")
        key = pair[0]
        result[key] = _unflatten_node(pair[1], f"{where}[{key!r}]", tensors, used, depth + 1)
    return result


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Rebuild the training state from a skeleton and its tensors; every tensor must be used."""
    if not isinstance(skeleton, dict) or skeleton.get("format") != SKELETON_FORMAT:
        raise _bad("root", f"not a {SKELETON_FORMAT} skeleton")
    if skeleton.get("format_version") != SKELETON_VERSION:
        raise _bad(
            "format_version",
            f"{skeleton.get('format_version')!r}; this pixloom reads {SKELETON_VERSION}",
        )
    used: set[str] = set()
    state = _unflatten_node(skeleton.get("root"), "training_state", tensors, used, 0)
    unused = sorted(set(tensors) - used)
    if unused:
        raise _bad("root", f"tensors {unused[:5]} are in the file but not in the skeleton")
    return state
