"""Issue 17 item 5 / issue 23 item 11: every training loop shows training before its first step and
takes a cancel before running a step it could skip. Counted in optimizer steps (a global
optimizer hook), never in time."""

from __future__ import annotations

from dataclasses import replace

import pytest
from torch.optim.optimizer import register_optimizer_step_post_hook

from backend.errors import Cancelled
from backend.formats.checkpoint import load_train_state
from backend.models.deferred.channels import ChannelLayout
from backend.progress import SilentProgress
from tests.fixtures.style_prior import SHORT_RUN
from training.deferred.dataset import HoldOut
from training.deferred.trainer import DeferredTrainOptions, train_deferred
from training.eg3d.config import tiny_config
from training.eg3d.trainer import train_eg3d
from training.style_prior.trainer import StylePriorTrainOptions, train_style_prior

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class CancelWhileShowing(SilentProgress):
    """The user presses cancel while the panel shows a stage starting with ``prefix`` (the cancel
    arrives after that report, as it would from the server)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def update(self, fraction: float, stage: str) -> None:
        super().update(fraction, stage)
        if stage.startswith(self.prefix):
            self.stop_requested = True


@pytest.fixture
def optimizer_steps():
    """How many optimizer steps ran (every optimizer, counted by a global hook)."""
    counted = [0]
    handle = register_optimizer_step_post_hook(lambda *arguments: counted.__setitem__(0, counted[0] + 1))
    yield counted
    handle.remove()


def _deferred_options(base: str, **changes) -> DeferredTrainOptions:
    settings = dict(base=base, resolution=16, steps=3, batch_size=2, checkpoint_every=100, validate_every=100,
                    validation_renders=1, channels=ChannelLayout(triplane_channels=2), triplane_resolution=16,
                    num_inference_steps=2, hold_out=HoldOut(views=("cam2",)))
    return DeferredTrainOptions(**{**settings, **changes})


def test_a_cancel_while_the_deferred_base_model_loads_runs_no_training_step(tiny_models, deferred_dataset, tmp_path,
                                                                             optimizer_steps):
    """Before: the first step (minutes at the defaults on a CPU) ran before any cancel check."""
    progress = CancelWhileShowing("loading the base model")
    with pytest.raises(Cancelled):
        train_deferred(deferred_dataset, tmp_path / "run", _deferred_options(tiny_models.names["base"]),
                       tiny_models.store, progress)
    assert optimizer_steps[0] == 0
    assert progress.reports[-1][1].startswith("starting training")


def test_a_cancel_between_micro_batches_stops_the_deferred_step_before_its_optimizer_step(tiny_models, deferred_dataset,
                                                                                           tmp_path, optimizer_steps):
    """A cancel that arrives once step 1 is done stops step 2 before its second micro-batch: step
    2's optimizer update never runs, and the snapshot holds step 1."""
    progress = CancelWhileShowing("training step 1/")
    with pytest.raises(Cancelled):
        train_deferred(deferred_dataset, tmp_path / "run", _deferred_options(tiny_models.names["base"], gradient_accumulation=3),
                       tiny_models.store, progress)
    assert optimizer_steps[0] == 1
    assert load_train_state(tmp_path / "run")["step"] == 1


def test_the_deferred_stage_moves_with_every_step(tiny_models, deferred_dataset, tmp_path):
    progress = SilentProgress()
    train_deferred(deferred_dataset, tmp_path / "run", _deferred_options(tiny_models.names["base"]), tiny_models.store, progress)
    stages = [stage for _, stage in progress.reports]
    start = stages.index("starting training at step 1 of 3")
    assert stages.index("loading the base model") < start
    assert [stage.split(",")[0] for stage in stages[start + 1:]] == [f"training step {n}/3" for n in (1, 2, 3)]


def test_a_cancel_while_the_gan_loads_runs_no_generator_step(sphere_dataset, tmp_path, optimizer_steps):
    progress = SilentProgress()
    progress.stop_requested = True  # cancelled before the loop's first report
    with pytest.raises(Cancelled):
        train_eg3d(sphere_dataset, tmp_path, replace(tiny_config(), total_images=400), progress)
    assert optimizer_steps[0] == 0
    assert load_train_state(tmp_path)["step"] == 0


def test_a_cancel_while_the_style_prior_loads_renders_no_pairs_and_runs_no_step(style_prior_generator_dir, tmp_path,
                                                                                optimizer_steps):
    progress = CancelWhileShowing("loading the generator")
    options = StylePriorTrainOptions(**{**SHORT_RUN, "steps": 4, "pair_reuse": 1, "batch_size": 4, "evaluation_avatars": 2})
    with pytest.raises(Cancelled):
        train_style_prior(style_prior_generator_dir, tmp_path / "run", options, progress)
    assert optimizer_steps[0] == 0
    assert progress.reports[-1][1] == "starting training at step 1 of 4"
