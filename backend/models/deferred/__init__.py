"""The deferred diffusion renderer (DiffusionAvatars) and its direct-prediction baseline."""
