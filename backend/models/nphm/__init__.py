"""NPHM, the neural parametric head model DiffusionAvatars uses as its proxy (Giebenhain et al., CVPR'23).

- ``skip_mlp.py``: the DeepSDF-style MLP (skip connection into the middle layer, Softplus(beta=100));
- ``local_ensemble.py``: many such MLPs run at once, mirror-symmetric pairs sharing weights;
- ``identity.py``: the identity SDF (global member + local members around facial anchors, Gaussian blending);
- ``expression.py``: the expression deformation, backward (posed -> canonical + ambient coordinates, as
  DiffusionAvatars tracks with) and forward (neutral -> posed offsets, the original NPHM);
- ``model.py``: both together with one config, saved as ``config.json`` + ``model.safetensors``;
- ``official.py``: the released NPHM checkpoints' key layout, read strictly;
- ``proxy_mesh.py``: per-frame meshes by marching cubes, each vertex with its canonical/ambient coordinates.
"""
