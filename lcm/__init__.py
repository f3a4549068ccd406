"""LCM: the Large Connectome Model workflow.

Its layers, each importing only from those below, are named in README (Development) and
checked by ``lint-imports`` against the contracts in ``pyproject.toml``.
"""

__version__ = "0.1.0"
CODE_URL = "https://github.com/lcm-workflow/lcm"
