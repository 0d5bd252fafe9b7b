"""The quality benchmark's measures are right on shapes with known answers, and the tri-plane fit
through the project's renderer reproduces unseen views of a head better than the mean image does
(if it did not, the camera convention or the renderer would be wrong, whatever the GAN learns)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from backend.geometry.shape_metrics import box_ellipsoid, chamfer_distance, head_extent, landmark_distance, occupancy_iou
from training.datasets.multiview import MultiviewImages
from training.deferred.evaluation import psnr
from training.eg3d.triplane_fit import FitSettings, fit_triplane

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_shape_measures_match_the_known_answers_for_concentric_spheres():
    truth = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    larger = trimesh.creation.icosphere(subdivisions=4, radius=1.2)
    extent = head_extent(truth)
    assert extent == pytest.approx(2 * math.sqrt(3), rel=0.01)
    assert chamfer_distance(truth, truth) < 0.01
    assert chamfer_distance(larger, truth) == pytest.approx(0.2 / extent, rel=0.1)
    assert occupancy_iou(truth, truth) > 0.95
    assert occupancy_iou(larger, truth) == pytest.approx(1 / 1.2 ** 3, abs=0.06)
    landmarks = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]])
    assert landmark_distance(larger, landmarks, truth) == pytest.approx(0.2 / extent, rel=0.1)
    assert box_ellipsoid(trimesh.creation.box((2.0, 1.0, 1.0))).bounds == pytest.approx(np.array([[-1, -0.5, -0.5], [1, 0.5, 0.5]]), abs=1e-6)


def test_a_triplane_fit_beats_the_mean_image_on_views_it_never_saw(sphere_dataset):
    data = MultiviewImages(sphere_dataset, 32, mirror=False)
    images = torch.stack([data.load_image(index) for index in range(len(data))])
    held_out = torch.arange(len(data)) % 4 == 1
    field = fit_triplane(images[~held_out], data.labels[~held_out],
                         FitSettings(plane_resolution=32, plane_channels=8, decoder_hidden=32, stratified_samples=16,
                                     importance_samples=16, white_background=True, steps=100, views_per_step=4))
    with torch.no_grad():
        rendered = field.render(data.labels[held_out], 32)
    unit = lambda image: ((image.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)  # noqa: E731
    mean_image = unit(images[~held_out].mean(dim=0))
    fitted = np.mean([psnr(unit(render), unit(target)) for render, target in zip(rendered, images[held_out])])
    baseline = np.mean([psnr(mean_image, unit(target)) for target in images[held_out]])
    assert fitted > baseline + 2.0, (fitted, baseline)
