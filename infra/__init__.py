"""Shared infrastructure of the service (``streaming``) and the model lifecycle (``models``).

Project paths (:mod:`infra.paths`), the base error type (:mod:`infra.errors`), the Spark session
with its pinned JVM packages (:mod:`infra.spark`, :mod:`infra.jvm_packages`), the MLflow store
(:mod:`infra.tracking`), and how a command's settings are read (:mod:`infra.settings`). Neither
``streaming`` nor ``models`` imports the other; both import this.
"""
