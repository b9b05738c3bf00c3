"""Data shipped with Tokenscope: models, presets, reference tables.

This folder installs as the package ``tokenscope.resources`` so that
``importlib.resources.files("tokenscope.resources")`` finds it both from a
checkout (editable install) and from a plain ``pip install .``.
"""
