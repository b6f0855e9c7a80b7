"""Face corpora: the on-disk format, the synthetic FACS renderer, importers, preprocessing."""
