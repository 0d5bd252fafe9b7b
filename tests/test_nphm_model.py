"""The NPHM networks: mirror-shared local SDFs, both deformation directions, exact save/load, and the
released checkpoints' key layout read strictly by ``models convert``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from backend.errors import InvalidInput
from backend.models.nphm.model import NeuralHead, load_head, nphm_forward_config, save_head, tiny_config
from backend.models.nphm.official import LATENTS_NAME, convert_official_nphm
from backend.models.nphm.skip_mlp import skip_mlp_shapes
from backend.models.store import ModelStore


def _symmetric_head() -> tuple[NeuralHead, torch.Tensor]:
    """A tiny head whose unpaired members are constant, with mirrored mean anchors and equal codes per pair."""
    torch.manual_seed(0)
    head = NeuralHead(tiny_config("forward"))
    with torch.no_grad():
        last = head.identity.members.layers[-1]
        pairs = head.config.identity.symmetric_pairs
        last.weight[pairs:] = 0.0
        last.bias[pairs:] = 0.3
        head.identity.anchor_mlp[-1].weight.zero_()
        head.identity.anchor_mlp[-1].bias.zero_()
        head.identity.mean_anchors.copy_(torch.tensor([[0.2, 0.1, 0.3], [-0.2, 0.1, 0.3], [0.3, -0.1, 0.1], [-0.3, -0.1, 0.1], [0.0, 0.0, 0.4]]))
    config = head.config.identity
    latent = torch.randn(1, config.latent_dim)
    local = latent[:, config.global_latent:].view(1, config.members, config.local_latent)
    local[:, 1] = local[:, 0]
    local[:, 3] = local[:, 2]
    return head, latent


def test_mirrored_pairs_share_weights_so_a_symmetric_identity_gives_a_symmetric_sdf():
    """The two members of a mirror pair are one network seeing x negated: with mirrored anchors and equal
    codes the head's SDF is the same at (x, y, z) and (-x, y, z), and differs once one code changes."""
    head, latent = _symmetric_head()
    points = torch.rand(1, 64, 3) - 0.5
    mirrored = points * torch.tensor([-1.0, 1.0, 1.0])
    with torch.no_grad():
        sdf, anchors = head.identity(points, latent)
        sdf_mirrored, _ = head.identity(mirrored, latent)
    assert torch.allclose(sdf, sdf_mirrored, atol=1e-6)
    assert torch.allclose(anchors[0, 1], anchors[0, 0] * torch.tensor([-1.0, 1.0, 1.0]))
    broken = latent.clone()
    broken[0, head.config.identity.global_latent] += 1.0
    with torch.no_grad():
        assert not torch.allclose(head.identity(points, broken)[0], head.identity(mirrored, broken)[0], atol=1e-4)
    assert head.identity.members.layers[0].weight.shape[0] == head.config.identity.members - head.config.identity.symmetric_pairs


def test_backward_head_canonicalises_posed_points_with_ambient_coordinates_and_forward_head_deforms():
    """A backward head maps posed points to canonical xyz plus 2 ambient coordinates and evaluates the posed SDF
    there; a forward head moves neutral points; each refuses the other direction's question by name."""
    torch.manual_seed(1)
    backward, forward = NeuralHead(tiny_config("backward")), NeuralHead(tiny_config("forward"))
    points = torch.rand(2, 10, 3) - 0.5
    identity, expression = torch.randn(2, backward.identity_dim), torch.randn(2, backward.expression_dim)
    canonical, ambient = backward.canonicalise(points, identity, expression)
    assert canonical.shape == (2, 10, 3) and ambient.shape == (2, 10, 2)
    direct = backward.canonical_sdf(torch.cat([canonical, ambient], -1), identity)
    assert torch.allclose(backward.posed_sdf(points, identity, expression), direct)
    assert forward.deform(points, identity, expression).shape == (2, 10, 3)
    with pytest.raises(ValueError, match="only a forward NPHM"):
        backward.deform(points, identity, expression)
    with pytest.raises(ValueError, match="only a backward NPHM"):
        forward.canonicalise(points, identity, expression)


def test_saved_head_loads_back_exactly_and_foreign_weights_are_refused(tmp_path):
    """Loading is the inverse of saving (same SDF values); weights from another config are refused, naming a key."""
    torch.manual_seed(2)
    head = NeuralHead(tiny_config("backward"))
    save_head(tmp_path / "a", head)
    loaded = load_head(tmp_path / "a")
    points, identity, expression = torch.rand(1, 16, 3), torch.randn(1, head.identity_dim), torch.randn(1, head.expression_dim)
    with torch.no_grad():
        assert torch.equal(head.posed_sdf(points, identity, expression), loaded.posed_sdf(points, identity, expression))
    save_head(tmp_path / "b", NeuralHead(tiny_config("forward")))
    (tmp_path / "b" / "model.safetensors").replace(tmp_path / "a" / "model.safetensors")
    with pytest.raises(InvalidInput, match="do not match the NPHM layout"):
        load_head(tmp_path / "a")


def official_identity_state(anchors=39, pairs=16, glob=64, loc=32, hidden=200, layers=4, pos=256) -> dict:
    """The released identity network's keys and shapes, written from the public code's layout (random values)."""
    state = {"mlp_pos.0.weight": torch.randn(pos, glob), "mlp_pos.0.bias": torch.randn(pos),
             "mlp_pos.2.weight": torch.randn(pos, pos), "mlp_pos.2.bias": torch.randn(pos),
             "mlp_pos.4.weight": torch.randn(anchors * 3, pos) * 0.01, "mlp_pos.4.bias": torch.randn(anchors * 3) * 0.01}
    for index, (fan_in, fan_out) in enumerate(skip_mlp_shapes(3 + glob + loc, hidden, layers, 1)):
        state[f"ensembled_deep_sdf.lin{index}.weight"] = torch.randn(anchors + 1 - pairs, fan_out, fan_in) * 0.05
        state[f"ensembled_deep_sdf.lin{index}.bias"] = torch.randn(anchors + 1 - pairs, fan_out) * 0.05
    return state


def official_expression_state(anchors=39, glob=64, loc=32, expression=200, compressed=32, hidden=512, layers=6) -> dict:
    state = {"compressor.0.weight": torch.randn(compressed, glob + (anchors + 1) * loc + anchors * 3) * 0.01,
             "compressor.0.bias": torch.randn(compressed)}
    for index, (fan_in, fan_out) in enumerate(skip_mlp_shapes(3 + expression + compressed, hidden, layers, 3)):
        state[f"defDeepSDF.lin{index}.weight"] = torch.randn(fan_out, fan_in) * 0.02
        state[f"defDeepSDF.lin{index}.bias"] = torch.randn(fan_out) * 0.02
    return state


def _write_official(path, decoder: dict, latent_dim: int, subjects: int) -> None:
    """A checkpoint_epoch_<N>.tar as the official trainers save it: decoder, latent embeddings, optimizer state."""
    torch.save({"epoch": 15000, "decoder_state_dict": decoder,
                "latent_codes_state_dict": {"weight": torch.randn(subjects, latent_dim)},
                "latent_codes_val_state_dict": {"weight": torch.randn(2, latent_dim)},
                "optimizer_encoder_state_dict": {"state": {}, "param_groups": [{"lr": 5e-4, "params": [0, 1]}]}}, path)


def test_released_nphm_checkpoints_at_published_sizes_convert_and_load_strictly(tmp_path):
    """`models convert` reads the released identity + expression files (weights_only) at the published sizes,
    keeps every tensor under the architecture's names (the SDF matches one computed from the file's tensors),
    keeps the latent codes, and the folder registers as role nphm."""
    identity, expression = official_identity_state(), official_expression_state()
    _write_official(tmp_path / "identity.tar", identity, 64 + 40 * 32, 3)
    _write_official(tmp_path / "expression.tar", expression, 200, 5)
    np.save(tmp_path / "anchors_39.npy", np.random.default_rng(0).normal(0, 0.2, (39, 3)).astype(np.float32))
    out = tmp_path / "nphm"
    result = subprocess.run([sys.executable, "-m", "backend.cli", "models", "convert", str(tmp_path / "identity.tar"),
                             "--nphm-expression", str(tmp_path / "expression.tar"), "--nphm-anchors", str(tmp_path / "anchors_39.npy"),
                             "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    head = load_head(out)
    config = head.config
    assert (config.identity.latent_dim, config.identity.anchors, config.identity.symmetric_pairs, config.identity.hidden) == (1344, 39, 16, 200)
    assert (config.expression.expression_dim, config.expression.compressed_identity, config.expression.hidden, config.expression.layers) == (200, 32, 512, 6)
    assert config.direction == "forward" and head.identity.members.layers[0].weight.shape == (24, 200, 99)
    assert torch.equal(head.deformation.mlp.layers[3].weight, expression["defDeepSDF.lin3.weight"])
    # far from every anchor only the background member (the last distinct weight set) has weight: exp(-0.2 / 0.1^2),
    # normalised with NPHM's +1e-6; evaluated by hand from the file's tensors
    point = torch.tensor([[[40.0, 0.0, 0.0]]])
    latent = torch.randn(1, 1344) * 0.1
    x = torch.cat([point[0], latent[:, :64], latent[:, -32:]], dim=-1)
    inputs = x
    for index in range(5):
        if index == 2:
            x = torch.cat([x, inputs], -1) / np.sqrt(2)
        x = x @ identity[f"ensembled_deep_sdf.lin{index}.weight"][-1].T + identity[f"ensembled_deep_sdf.lin{index}.bias"][-1]
        if index < 4:
            x = torch.nn.functional.softplus(x, beta=100)
    with torch.no_grad():
        weight = np.exp(-20.0)
        assert torch.allclose(head.canonical_sdf(point, latent), x[:, 0] * weight / (weight + 1e-6), rtol=1e-4, atol=1e-7)
    from safetensors.torch import load_file
    latents = load_file(str(out / LATENTS_NAME))
    assert latents["identity"].shape == (3, 1344) and latents["expression"].shape == (5, 200)
    entry = ModelStore(tmp_path / "store").add(out, "nphm-released", "nphm")
    assert (entry.role, entry.format) == ("nphm", "checkpoint")


def test_a_checkpoint_off_the_released_layout_is_refused_naming_the_key(tmp_path):
    """A missing or foreign key, a wrong anchors file, or a plain pickled object each stop the conversion with the reason."""
    identity, expression = official_identity_state(anchors=5, pairs=2, glob=8, loc=4, hidden=32, layers=2, pos=16), \
        official_expression_state(anchors=5, glob=8, loc=4, expression=4, compressed=4, hidden=32, layers=2)
    np.save(tmp_path / "anchors.npy", np.zeros((5, 3), np.float32))
    _write_official(tmp_path / "expression.tar", expression, 4, 2)
    _write_official(tmp_path / "identity.tar", identity, 8 + 6 * 4, 2)
    convert_official_nphm(tmp_path / "identity.tar", tmp_path / "expression.tar", tmp_path / "anchors.npy", tmp_path / "ok")
    assert load_head(tmp_path / "ok").config.identity.symmetric_pairs == 2
    broken = dict(identity)
    broken.pop("ensembled_deep_sdf.lin1.bias")
    _write_official(tmp_path / "missing.tar", broken, 8 + 6 * 4, 2)
    with pytest.raises(InvalidInput, match=r"missing \(first identity.members.layers.1.bias\)"):
        convert_official_nphm(tmp_path / "missing.tar", tmp_path / "expression.tar", tmp_path / "anchors.npy", tmp_path / "x")
    _write_official(tmp_path / "foreign.tar", {**identity, "color_mlp.0.weight": torch.zeros(1)}, 8 + 6 * 4, 2)
    with pytest.raises(InvalidInput, match="color_mlp.0.weight"):
        convert_official_nphm(tmp_path / "foreign.tar", tmp_path / "expression.tar", tmp_path / "anchors.npy", tmp_path / "x")
    np.save(tmp_path / "anchors_39.npy", np.zeros((39, 3), np.float32))
    with pytest.raises(InvalidInput, match="holds 39 anchor positions, the checkpoint predicts 5"):
        convert_official_nphm(tmp_path / "identity.tar", tmp_path / "expression.tar", tmp_path / "anchors_39.npy", tmp_path / "x")
    torch.save({"decoder_state_dict": identity, "why": np.dtype("float32")}, tmp_path / "pickled.tar")
    with pytest.raises(InvalidInput, match="cannot be read as plain weights"):
        convert_official_nphm(tmp_path / "pickled.tar", tmp_path / "expression.tar", tmp_path / "anchors.npy", tmp_path / "x")


def test_published_configs_have_the_published_sizes():
    """The defaults are the published networks: NPHM identity latent 1344, DiffusionAvatars' backward form with 2 ambient
    coordinates and 200-d codes, and the original forward NPHM."""
    default = tiny_config.__globals__["NphmConfig"]()
    assert (default.direction, default.ambient_dims, default.identity.latent_dim, default.expression.expression_dim) == ("backward", 2, 1344, 200)
    assert nphm_forward_config().ambient_dims == 0
