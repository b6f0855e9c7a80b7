"""How work meets hardware: the ``compute`` settings resolved once into torch objects.

Modules: :mod:`~deepfn.compute.device` (``compute.device`` and a stage's precision ->
:class:`~deepfn.compute.device.Compute`: device, autocast, memory format, generators, RNG state).
Knows torch, nothing about faces or AUs.  Importing the package loads nothing heavy; import the
submodules.
"""

__all__: list[str] = []
