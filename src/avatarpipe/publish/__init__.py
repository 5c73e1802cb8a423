"""Publishing: the run folder, variants, manifest, blob upload, nightly index and summary."""
