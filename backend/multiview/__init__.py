"""StyleAvatar3D's data stage: stylized multi-view images painted by Stable Diffusion + ControlNet."""
