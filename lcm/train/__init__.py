"""Training of the Large Connectome Model: pretraining on BEI variables, finetuning on a diagnosis.

``loop`` holds what both share (seeding, optimiser, schedule, batches), ``settings`` fills
defaults from the config schema, ``pretrain`` and ``finetune`` the two procedures.
"""
