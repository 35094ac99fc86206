"""The engine on a Ray cluster (the optional ``ray`` extra: ``pip install '.[ray]'``).

`RayBackend` implements `nst_engine.backend.Backend` with one Ray actor per worker; `loopback`
starts a one-host Ray that listens on 127.0.0.1 only, for the tests and the benchmark. Neither
imports Ray until it is used, so this package imports without it.
"""

from nst_engine.ray.backend import RayBackend, RayUnavailable, check_reachable, import_ray

__all__ = ["RayBackend", "RayUnavailable", "check_reachable", "import_ray"]
