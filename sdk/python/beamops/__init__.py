"""beamops: MLOps for particle physics and accelerator controls.

The ``beamops`` namespace is assembled from several source folders: this SDK, the shared service
runtime (``beamops.runtime``), one folder per service (``beamops.registry`` ...), and the
generated gRPC stubs (``beamops.<area>.v1``). ``extend_path`` lets them share the name.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
