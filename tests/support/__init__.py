"""Helpers shared by the tests (data locations, synthetic scenes, toy models, CLI runners); fixtures are in
``tests/conftest.py``. Test files import from here, never from each other."""
