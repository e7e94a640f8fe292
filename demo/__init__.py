"""The demo of the whole loop and its synthetic listing events; run from the checkout only.

Not part of the installed package: ``scripts/demo`` runs :mod:`demo.loop`.
"""
