"""The version, written once: the package, pyproject.toml (setuptools reads it), the outputs' tags and the resume
fingerprint all read it from here."""

__version__ = "0.1.0"
