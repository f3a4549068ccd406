"""Denoising settings: the config's ``denoise`` section, validated by the config schema."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import jsonschema

from lcm.config import parse_settings, schema
from lcm.exceptions import ConfigError


@dataclass(frozen=True)
class DenoiseSettings:
    """How parcel signals are cleaned (see ``denoise`` in the config schema).

    Attributes
    ----------
    strategy : str
        Confound set: ``6P``, ``9P``, ``24P``, ``36P`` or ``acompcor``.
    fd_threshold : float or None
        Volumes with framewise displacement above this (mm) are scrubbed; ``None`` disables.
    high_pass, low_pass : float or None
        Band-pass cut-offs in Hz; ``None`` disables each side.
    detrend : bool
        Remove linear trends.
    min_volumes : int
        Runs with fewer volumes left are excluded.
    """

    strategy: str = "24P"
    fd_threshold: float | None = 0.5
    high_pass: float | None = 0.01
    low_pass: float | None = 0.1
    detrend: bool = True
    min_volumes: int = 50

    @classmethod
    def from_dict(cls, value: dict[str, Any], source: str = "--denoise") -> DenoiseSettings:
        """Validate ``value`` against the schema's ``denoise`` section, filling defaults."""
        sub = schema()["properties"]["denoise"]
        value = copy.deepcopy(value)
        errors = sorted(
            jsonschema.Draft202012Validator(sub).iter_errors(value), key=lambda e: e.path
        )
        if errors:
            err = errors[0]
            key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            raise ConfigError(
                f"{source}: invalid denoise setting at {key!r}: {err.message}",
                hint=f"Allowed keys: {sorted(sub['properties'])}; see the config schema.",
            )
        for key, prop in sub["properties"].items():
            value.setdefault(key, prop.get("default"))
        settings = cls(**value)
        if (
            settings.high_pass is not None
            and settings.low_pass is not None
            and settings.high_pass >= settings.low_pass
        ):
            raise ConfigError(
                f"{source}: high_pass ({settings.high_pass} Hz) must be below low_pass "
                f"({settings.low_pass} Hz).",
                hint="Typical resting-state band: high_pass 0.01, low_pass 0.1.",
            )
        return settings

    @classmethod
    def from_json(cls, text: str) -> DenoiseSettings:
        """Parse the ``--denoise`` JSON argument."""
        return cls.from_dict(parse_settings(text, "denoise"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (recorded in sidecars)."""
        return asdict(self)
