"""The deferred renderer (DiffusionAvatars): on a latent-diffusion prior or trained from scratch, diffusion or direct prediction."""
