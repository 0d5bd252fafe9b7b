"""torch Datasets over the project's on-disk dataset formats."""
