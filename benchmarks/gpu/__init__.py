"""The one-run GPU benchmark (``python build.py bench gpu``): its sizes, models, sections and report."""
