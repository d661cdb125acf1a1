"""Nightly pipelines: config, transcript sources, once-per-night runs, beat schedule."""
