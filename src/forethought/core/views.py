"""What the lower modules of the core read of the engine configuration, as a type.

:class:`forethought.core.config.EngineConfig` imports the registry, which imports the detectors,
which use the state and its codec: those cannot import the config back (not even for a type
annotation: the project has no import cycles), so they annotate with :class:`EngineView`, which
every ``EngineConfig`` is.

>>> from forethought.core.config import EngineConfig
>>> isinstance(EngineConfig(), EngineView)
True
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class EngineView(Protocol):
    """The engine's settings: every setting an attribute (``config.ring_buckets``), the detectors'
    registry (``config.detectors``), the shared window settings (``config.windows``) and each
    detector's section (``config.section(name)``)."""

    def section(self, name: str) -> Any:
        """The settings of detector ``name``."""
        ...

    def __getattr__(self, name: str) -> Any: ...
