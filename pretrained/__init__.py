"""Pretrained checkpoints made by this project; see manifest.json for how each was made."""
