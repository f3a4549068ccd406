"""Connectome-stage settings: the config's ``denoise`` and ``connectome`` sections.

Both are validated against the config schema (one source of truth for keys and defaults); the
CLI receives them as JSON (``--denoise``, ``--connectome``).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import jsonschema

from lcm.config import parse_settings, schema
from lcm.connectome.confounds import STRATEGIES
from lcm.exceptions import ConfigError


def _validated(section: str, value: dict[str, Any], source: str) -> dict[str, Any]:
    """``value`` checked against the schema's ``section``, schema defaults filled (one level)."""
    sub = schema()["properties"][section]
    value = copy.deepcopy(value)
    errors = sorted(jsonschema.Draft202012Validator(sub).iter_errors(value), key=lambda e: e.path)
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(
            f"{source}: invalid {section} setting at {key!r}: {err.message}",
            hint=f"Allowed keys: {sorted(sub['properties'])}; see the config schema.",
        )
    for key, prop in sub["properties"].items():
        value.setdefault(key, copy.deepcopy(prop.get("default")))
    return value


def lowest_min_volumes() -> int:
    """The least ``denoise.min_volumes`` the config schema allows (its ``minimum``)."""
    return int(schema()["properties"]["denoise"]["properties"]["min_volumes"]["minimum"])


# nilearn's load_confounds_strategy("scrubbing"): std_dvars_threshold 1.5 (and fd 0.5 mm).
NILEARN_SCRUBBING_DVARS = 1.5
AUTO = "auto"


@dataclass(frozen=True)
class DenoiseSettings:
    """How parcel signals are cleaned (see ``denoise`` in the config schema).

    Attributes
    ----------
    strategy : str
        Confound set (see :data:`lcm.connectome.confounds.STRATEGIES`).
    fd_threshold : float or None
        Volumes with framewise displacement above this (mm) are scrubbed; ``None`` disables.
    dvars_threshold : float or None
        Volumes with fMRIPrep ``std_dvars`` above this are scrubbed too; ``None`` disables.
        The config's ``auto`` (its default) is resolved by :meth:`from_dict`:
        :data:`NILEARN_SCRUBBING_DVARS` under the ``scrubbing`` presets, ``None`` otherwise.
    high_pass, low_pass : float or None
        Band-pass cut-offs in Hz (Butterworth, nilearn's order 5, forward-backward); ``None``
        disables each side. aCompCor strategies also regress fMRIPrep's ``cosine_XX``
        high-pass basis; without those columns they need ``high_pass`` (see
        :func:`lcm.connectome.confounds.confound_columns`).
    detrend : bool
        Remove linear trends.
    standardize : str
        ``zscore`` | ``psc`` | ``none`` (nilearn.signal.clean semantics).
    min_volumes : int
        Runs with fewer volumes left are excluded.
    min_dof : int or None
        Runs with fewer degrees of freedom left once filtered and regressed are excluded
        (:func:`lcm.connectome.denoise.degrees_of_freedom`); ``None`` disables the check.
    """

    strategy: str = "24P"
    fd_threshold: float | None = 0.5
    dvars_threshold: float | None = None
    high_pass: float | None = 0.01
    low_pass: float | None = 0.1
    detrend: bool = True
    standardize: str = "zscore"
    min_volumes: int = 50
    min_dof: int | None = 20

    @classmethod
    def from_dict(cls, value: dict[str, Any], source: str = "--denoise") -> DenoiseSettings:
        """Validate ``value`` against the schema's ``denoise`` section, filling defaults.

        ``dvars_threshold: auto`` (the schema's default) becomes 1.5 under a strategy that
        scrubs (the ``scrubbing`` presets, as nilearn's), ``None`` under the others.

        Parameters
        ----------
        value : dict
            The ``denoise`` settings (a config's section, or ``--denoise``'s JSON).
        source : str, default "--denoise"
            Where they were given, named in errors.

        Raises
        ------
        ConfigError
            A value the schema refuses, ``high_pass`` not below ``low_pass``, or a scrubbing
            strategy with neither threshold.
        """
        values = _validated("denoise", value, source)
        if values["dvars_threshold"] == AUTO:
            scrubs = getattr(STRATEGIES.get(values["strategy"]), "scrubs", False)
            values["dvars_threshold"] = NILEARN_SCRUBBING_DVARS if scrubs else None
        settings = cls(**values)
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
        strategy = STRATEGIES.get(settings.strategy)
        if (
            strategy is not None
            and strategy.scrubs
            and settings.fd_threshold is None
            and settings.dvars_threshold is None
        ):
            raise ConfigError(
                f"{source}: strategy {settings.strategy!r} scrubs volumes, but fd_threshold and "
                "dvars_threshold are both null.",
                hint="nilearn's scrubbing preset uses fd_threshold 0.5 and dvars_threshold 1.5.",
            )
        return settings

    @classmethod
    def from_json(cls, text: str) -> DenoiseSettings:
        """Parse the ``--denoise`` JSON argument.

        Parameters
        ----------
        text : str
            The argument's JSON object.

        Raises
        ------
        ConfigError
            Not a JSON object (:func:`lcm.config.parse_settings`), or settings :meth:`from_dict`
            refuses.
        """
        return cls.from_dict(parse_settings(text, "denoise"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (recorded in sidecars and QC)."""
        return asdict(self)


@dataclass(frozen=True)
class ConnectomeSettings:
    """Which matrices are written per run (see ``connectome`` in the config schema).

    Attributes
    ----------
    kinds : tuple of str
        Among ``pearson``, ``partial``, ``covariance``; Pearson is always written (the store
        reads it), so it is added when missing.
    fisher_z : bool
        Also write arctanh copies of the correlation matrices (``desc-fisherz``).
    window_length : int or None
        Windowed Pearson FC over this many kept volumes; ``None`` disables.
    window_step : int or None
        Volumes between window starts (``None``: ``window_length``, no overlap).
    """

    kinds: tuple[str, ...] = ("pearson",)
    fisher_z: bool = False
    window_length: int | None = None
    window_step: int | None = None

    @classmethod
    def from_dict(cls, value: dict[str, Any], source: str = "--connectome") -> ConnectomeSettings:
        """Validate ``value`` against the schema's ``connectome`` section, filling defaults.

        Parameters
        ----------
        value : dict
            The ``connectome`` settings (a config's section, or ``--connectome``'s JSON).
        source : str, default "--connectome"
            Where they were given, named in errors.

        Raises
        ------
        ConfigError
            A value the schema refuses, or ``window.step`` without ``window.length``.
        """
        value = _validated("connectome", value, source)
        window = _validated_window(value["window"], source)
        kinds = tuple(dict.fromkeys(["pearson", *value["kinds"]]))
        step = window["step"]
        if window["length"] is None and step is not None:
            raise ConfigError(
                f"{source}: window.step ({step}) is set but window.length is null.",
                hint="Set connectome.window.length (e.g. 500 TRs) or remove window.step.",
            )
        return cls(kinds, bool(value["fisher_z"]), window["length"], step)

    @classmethod
    def from_json(cls, text: str) -> ConnectomeSettings:
        """Parse the ``--connectome`` JSON argument.

        Parameters
        ----------
        text : str
            The argument's JSON object.

        Raises
        ------
        ConfigError
            Not a JSON object (:func:`lcm.config.parse_settings`), or settings :meth:`from_dict`
            refuses.
        """
        return cls.from_dict(parse_settings(text, "connectome"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the config's layout (recorded in sidecars and QC)."""
        return {
            "kinds": list(self.kinds),
            "fisher_z": self.fisher_z,
            "window": {"length": self.window_length, "step": self.window_step},
        }


def _validated_window(value: dict[str, Any], source: str) -> dict[str, Any]:
    props = schema()["properties"]["connectome"]["properties"]["window"]["properties"]
    return {k: value.get(k, props[k].get("default")) for k in props}
