"""Datasets behind one registry (shapes, digits, photos, faces, folder:PATH) and their parts.

Import `pixloom.data.registry` for `load_dataset`; nothing is loaded at import time.
"""
