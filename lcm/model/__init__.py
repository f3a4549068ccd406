"""The Large Connectome Model: configuration, modules, targets, losses and checkpoints.

``config`` holds the dataclass and presets, ``lcm`` the ``nn.Module``s, ``targets`` how catalogue
variables become query tokens and training targets, ``losses`` the objectives, ``checkpoint``
saving and loading (``checkpoint_meta`` its file names and ``model.json``, read without torch),
``info`` parameter counts without allocating weights.
"""
