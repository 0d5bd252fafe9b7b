"""EG3D tri-plane GAN written in plain PyTorch (no custom CUDA ops): one module per network family."""
