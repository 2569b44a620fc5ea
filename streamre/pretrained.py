"""Finding and loading weights the way this project runs: the weights named, nothing else.

Since transformers 5.25, `from_pretrained` asks by default for optimised layers ("kernels") that
the `kernels` package fetches from a hub, and refuses to load a model where that package is
missing. Our weights come from installed packages and local folders, and nothing is fetched at
run time, so every model is loaded through `load_pretrained`, with kernels off.
"""

from __future__ import annotations

from pathlib import Path

from streamre import MODELS_DIR


def load_pretrained(model_class, where: str, **options):
    """`model_class.from_pretrained(where, **options)`, never asking for hub kernels."""
    return model_class.from_pretrained(where, use_kernels=False, **options)


def resolve_folder(name: str) -> str:
    """Where a model named on the command line is: a folder as given, a bare name bundled under
    models/ that folder; anything else is a hub id (which only a cache can answer here)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if (MODELS_DIR / name).is_dir():
        return str(MODELS_DIR / name)
    return name
