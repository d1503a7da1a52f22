"""The core every capability stands on: messages, aggregates, the bus, the unit-of-work port,
names, signatures, the capability declaration and the version.

Import from the modules (``modelplane.core.bus``…): this package imports nothing itself, so
``import modelplane`` (which reads ``core.version``) stays a few milliseconds.
"""
