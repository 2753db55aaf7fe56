"""beamops: MLOps for particle physics and accelerator controls.

The ``beamops`` namespace is assembled from several source folders: this SDK, the shared service
runtime (``beamops.runtime``), one folder per service (``beamops.registry`` ...), and the
generated gRPC stubs (``beamops.<area>.v1``). ``extend_path`` lets them share the name.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import beamops.runtime` in a server does not load the whole SDK.
    if name == "Client":
        from .client import Client

        return Client
    if name == "load_model":
        from .embedded import load_model

        return load_model
    if name.endswith("Error"):
        from . import errors

        if hasattr(errors, name):
            return getattr(errors, name)
    raise AttributeError(f"module 'beamops' has no attribute {name!r}")
