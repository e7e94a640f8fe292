"""Shared infrastructure of the service (``streaming``) and the model lifecycle (``models``).

Project paths (:mod:`infra.paths`), the base error type (:mod:`infra.errors`), the Spark session
with its pinned JVM packages (:mod:`infra.spark`, :mod:`infra.jvm_packages`), the MLflow store
(:mod:`infra.tracking`), how a command's settings are read (:mod:`infra.settings`), and the data
both sides know: the listings data set and its generator (:mod:`infra.listings`), the training
data's profile (:mod:`infra.profile`), a table's format by its path (:mod:`infra.tables`).
Neither ``streaming`` nor ``models`` imports the other; both import this.
"""
