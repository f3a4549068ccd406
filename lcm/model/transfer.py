"""Host-to-device copies that never make the host wait for the device.

A plain ``tensor.to("cuda")`` from ordinary (pageable) host memory is a copy followed by a
stream synchronisation: the host stops until the GPU has finished everything queued before it,
the previous training step included, so every step would start on an idle GPU. Copied from
page-locked memory with ``non_blocking=True`` the same copy is queued on the stream like a
kernel; the caching host allocator keeps the page-locked buffer until the copy has run.
"""

from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device``, copied without a host synchronisation.

    Parameters
    ----------
    tensor : torch.Tensor
    device : torch.device or str

    Returns
    -------
    torch.Tensor
        ``tensor`` itself when it is on ``device`` already; else a copy whose transfer is
        queued on the current stream (from page-locked memory for CPU -> CUDA).
    """
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
