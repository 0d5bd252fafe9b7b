"""Image-guided generation: a conditional diffusion prior over the EG3D generator's style code w."""
