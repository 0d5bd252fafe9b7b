"""Training the style prior (image -> w diffusion) on the trained generator's own renders."""
