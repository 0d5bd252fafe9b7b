"""Training the deferred diffusion renderer (DiffusionAvatars) on a deferred dataset."""
