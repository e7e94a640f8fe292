"""The price model's lifecycle: data, training, tuning, promotion and reproduction.

Run ``python -m models --help``. The feature columns and label live in :mod:`models.listings`;
registry aliases in :mod:`models.aliases`; :func:`models.registry.ensure_registered_model`
guarantees a servable ``models:/NAME@champion``.
"""
