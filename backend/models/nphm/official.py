"""The released NPHM checkpoints (``checkpoint_epoch_<N>.tar``) -> a ``NeuralHead`` checkpoint.

The official training scripts save a dict with ``decoder_state_dict`` (the network),
``latent_codes_state_dict`` / ``latent_codes_val_state_dict`` (``nn.Embedding`` weights, one code per
training / validation scan) and optimizer states; tensors and plain containers only, so the files are
read with ``torch.load(weights_only=True)``. The key layout (from the public code's module names):

identity (``FastEnsembleDeepSDFMirrored``)          ours
  ``mlp_pos.{0,2,4}.{weight,bias}``                   ``identity.anchor_mlp.{0,2,4}.*``
  ``ensembled_deep_sdf.lin<k>.{weight,bias}``         ``identity.members.layers.<k>.*``
expression (``DeformationNetwork``, "compress")
  ``compressor.0.{weight,bias}``                      ``deformation.identity_compressor.*``
  ``defDeepSDF.lin<k>.{weight,bias}``                 ``deformation.mlp.layers.<k>.*``

The mean anchor positions are not in the state dict (the official code keeps them as a plain
attribute loaded from ``assets/anchors_39.npy`` of the NPHM repository), so that file is an input.
Sizes are read from the tensor shapes; the keys must then be exactly the layout those sizes build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from ...errors import InvalidInput
from .expression import ExpressionConfig
from .identity import IdentityConfig
from .model import NeuralHead, NphmConfig, save_head

LATENTS_NAME = "latents.safetensors"
_IDENTITY_RENAMES = ((r"^mlp_pos\.(\d+)\.", r"identity.anchor_mlp.\1."), (r"^ensembled_deep_sdf\.lin(\d+)\.", r"identity.members.layers.\1."))
_EXPRESSION_RENAMES = ((r"^compressor\.0\.", "deformation.identity_compressor."), (r"^defDeepSDF\.lin(\d+)\.", r"deformation.mlp.layers.\1."))
CONVERT_HINT = "pass the released checkpoint_epoch_<N>.tar files of nphm_identity_space_pretrained and nphm_expression_space_pretrained"


def check_exact_keys(expected: Mapping[str, Any], weights: Mapping[str, Any], where: str) -> None:
    """Every expected tensor present with its shape, nothing left over; else one error naming the first of each."""
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = [f"{name} {tuple(weights[name].shape)} vs {tuple(tensor.shape)}" for name, tensor in expected.items()
             if name in weights and tuple(weights[name].shape) != tuple(tensor.shape)]
    problems = [f"{len(missing)} missing (first {missing[0]})" if missing else "",
                f"{len(unexpected)} unexpected (first {unexpected[0]})" if unexpected else "",
                f"{len(wrong)} of another shape (first {wrong[0]})" if wrong else ""]
    if any(problems):
        raise InvalidInput(f"the weights in {where} do not match the NPHM layout: {'; '.join(p for p in problems if p)}",
                           "use the config.json and weights of one run (or the released checkpoints unchanged)", field="checkpoint")


def rename(state: Mapping[str, Any], rules: tuple[tuple[str, str], ...], where: str) -> dict[str, Any]:
    renamed = {}
    for name, tensor in state.items():
        for pattern, replacement in rules:
            if re.match(pattern, name):
                renamed[re.sub(pattern, replacement, name)] = tensor
                break
        else:
            raise InvalidInput(f"{where} holds {name!r}, which is not part of the NPHM layout", CONVERT_HINT, field="checkpoint")
    return renamed


def _shape(state: Mapping[str, Any], name: str, where: str) -> tuple[int, ...]:
    if name not in state:
        raise InvalidInput(f"{where} has no {name!r}: it is not an NPHM checkpoint of the released layout", CONVERT_HINT, field="checkpoint")
    return tuple(state[name].shape)


def _layer_count(state: Mapping[str, Any], prefix: str) -> int:
    """How many ``<prefix><k>.weight`` layers there are (the output layer's input width is the hidden width)."""
    return len({int(m[1]) for name in state if (m := re.match(re.escape(prefix) + r"(\d+)\.weight$", name))})


def identity_config_from(state: Mapping[str, Any], where: str) -> IdentityConfig:
    anchor_hidden, global_latent = _shape(state, "mlp_pos.0.weight", where)
    anchors = _shape(state, "mlp_pos.4.weight", where)[0] // 3
    distinct, _, member_input = _shape(state, "ensembled_deep_sdf.lin0.weight", where)
    layers = _layer_count(state, "ensembled_deep_sdf.lin") - 1
    hidden = _shape(state, f"ensembled_deep_sdf.lin{layers}.weight", where)[-1]
    return IdentityConfig(global_latent=global_latent, local_latent=member_input - 3 - global_latent, anchors=anchors,
                          symmetric_pairs=anchors + 1 - distinct, hidden=hidden, layers=layers, anchor_mlp_hidden=anchor_hidden)


def expression_config_from(state: Mapping[str, Any], where: str) -> ExpressionConfig:
    compressed = _shape(state, "compressor.0.weight", where)[0]
    mlp_input = _shape(state, "defDeepSDF.lin0.weight", where)[1]
    layers = _layer_count(state, "defDeepSDF.lin") - 1
    hidden = _shape(state, f"defDeepSDF.lin{layers}.weight", where)[-1]
    return ExpressionConfig(expression_dim=mlp_input - 3 - compressed, compressed_identity=compressed, hidden=hidden, layers=layers)


def read_official(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, read without running any code from the file."""
    from ..pickled_conversion import load_plain_checkpoint

    source = Path(path).expanduser()
    data = load_plain_checkpoint(source)
    if not isinstance(data, dict) or not isinstance(data.get("decoder_state_dict"), dict):
        raise InvalidInput(f"{source.name} has no decoder_state_dict: it is not an official NPHM checkpoint", CONVERT_HINT, field="path")
    return data


def read_mean_anchors(path: str | Path, anchors: int):
    import numpy as np
    import torch

    source = Path(path).expanduser()
    try:
        array = np.load(source, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{source.name} is not a readable .npy array ({error})",
                           "pass assets/anchors_39.npy from the NPHM repository", field="anchors") from None
    if array.size != anchors * 3:
        raise InvalidInput(f"{source.name} holds {array.size // 3} anchor positions, the checkpoint predicts {anchors}",
                           "pass the mean anchors the checkpoint was trained with (assets/anchors_39.npy for NPHM)", field="anchors")
    return torch.from_numpy(array.reshape(anchors, 3).astype("float32"))


def _latent_codes(data: Mapping[str, Any], key: str):
    codes = data.get(key)
    return codes.get("weight") if isinstance(codes, dict) else None


def convert_official_nphm(identity_path: str | Path, expression_path: str | Path, anchors_path: str | Path,
                          out: str | Path) -> Path:
    """Write a forward (original NPHM) ``NeuralHead`` checkpoint + the released latent codes to ``out``."""
    from safetensors.torch import save_file

    from blender_addon.formats.files import atomic_write

    identity_data, expression_data = read_official(identity_path), read_official(expression_path)
    identity_state, expression_state = identity_data["decoder_state_dict"], expression_data["decoder_state_dict"]
    config = NphmConfig(identity_config_from(identity_state, Path(identity_path).name),
                        expression_config_from(expression_state, Path(expression_path).name), "forward")
    weights = {**rename(identity_state, _IDENTITY_RENAMES, Path(identity_path).name),
               **rename(expression_state, _EXPRESSION_RENAMES, Path(expression_path).name),
               "identity.mean_anchors": read_mean_anchors(anchors_path, config.identity.anchors)}
    head = NeuralHead(config)
    check_exact_keys(head.state_dict(), weights, f"{Path(identity_path).name} + {Path(expression_path).name}")
    head.load_state_dict(weights, strict=True)
    target = Path(out).expanduser()
    latents = {name: codes.detach().float().contiguous() for name, codes in (
        ("identity", _latent_codes(identity_data, "latent_codes_state_dict")),
        ("identity_val", _latent_codes(identity_data, "latent_codes_val_state_dict")),
        ("expression", _latent_codes(expression_data, "latent_codes_state_dict")),
        ("expression_val", _latent_codes(expression_data, "latent_codes_val_state_dict"))) if codes is not None}
    if "identity" in latents and latents["identity"].shape[-1] != config.identity.latent_dim:
        raise InvalidInput(f"the identity codes in {Path(identity_path).name} have {latents['identity'].shape[-1]} numbers, "
                           f"the network reads {config.identity.latent_dim}", CONVERT_HINT, field="checkpoint")
    if latents:
        atomic_write(target / LATENTS_NAME, lambda temp: save_file(latents, str(temp)))
    return save_head(target, head, extra={"source": "official NPHM", "identity_checkpoint": Path(identity_path).name,
                                          "expression_checkpoint": Path(expression_path).name})
