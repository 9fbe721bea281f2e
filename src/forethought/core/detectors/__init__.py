"""The built-in detectors, one module each (the contract: :mod:`forethought.core.plugin`; the order
they run in: :mod:`forethought.core.registry`)."""
