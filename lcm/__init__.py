"""LCM: the Large Connectome Model workflow.

Layers, bottom to top: ``lcm.io`` (files, names, provenance) and ``lcm.bids``;
``lcm.synth``; ``lcm.preprocess`` and ``lcm.connectome``; ``lcm.store``; ``lcm.model``;
``lcm.train`` and ``lcm.evaluate``; ``lcm.report``; ``lcm.commands`` and ``lcm.cli`` on top.
"""

__version__ = "0.1.0"
CODE_URL = "https://github.com/lcm-workflow/lcm"
