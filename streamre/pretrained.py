"""Loading transformers weights the way this project runs: the weights named, nothing else.

Since transformers 5.25, `from_pretrained` asks by default for optimised layers ("kernels") that
the `kernels` package fetches from a hub, and refuses to load a model where that package is
missing. Our weights come from installed packages and local folders, and nothing is fetched at
run time, so every model is loaded through `load_pretrained`, with kernels off.
"""

from __future__ import annotations


def load_pretrained(model_class, where: str, **options):
    """`model_class.from_pretrained(where, **options)`, never asking for hub kernels."""
    return model_class.from_pretrained(where, use_kernels=False, **options)
