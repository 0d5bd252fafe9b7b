"""Training the EG3D tri-plane GAN (with StyleAvatar3D's coarse-to-fine pose-conditioned D)."""
