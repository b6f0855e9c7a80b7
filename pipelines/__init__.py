"""DVC stage entrypoints, one module per stage: ``python -m pipelines.<stage>`` (dvc.yaml)."""
