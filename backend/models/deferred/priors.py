"""What denoises in a deferred renderer, and the training rates that suit each (no torch here: the CLI and
the job parameters read these).

- ``'latent-diffusion'``: DiffusionAvatars' method, a ControlNet on a frozen Stable Diffusion base.
- ``'none'``: the paper's "w/o LDM prior" ablation, a small UNet trained from scratch in pixel space.
"""

from __future__ import annotations

PRIORS = ("latent-diffusion", "none")
NETWORK_LEARNING_RATES = {"latent-diffusion": 1e-4, "none": 1e-3}
"""The networks' learning rate when none is given: fine-tuning a ControlNet copied from a trained UNet
wants the paper's 1e-4; a UNet trained from scratch learns in minutes with 1e-3."""
LEARNING_RATE_SCHEDULES = ("constant", "cosine")
"""'cosine': after the warm-up, every learning rate decays to zero at the last step."""
