"""Model configuration: one dataclass plus named presets.

A checkpoint stores :meth:`LCMConfig.to_dict`, so a model is rebuilt from its JSON alone.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from lcm.exceptions import ConfigError


@dataclass(frozen=True)
class LCMConfig:
    """Architecture of an LCM.

    Attributes
    ----------
    n_rois : int
        Regions of the atlas; each ROI's FC row (``n_rois`` values) is one token.
    n_queries : int
        Query (BEI) tokens of the decoder, one output value each.
    d_model : int
        Token width.
    n_heads : int
        Attention heads (``d_model`` must divide by it).
    d_ffn : int
        Hidden width of the feed-forward blocks.
    n_layers : int
        Decoder layers (query self-attention, cross-attention to ROI tokens, feed-forward).
    n_encoder_layers : int
        ROI-mixer layers before the decoder (>= 1: masked-ROI reconstruction reads from them).
    dropout : float
        Dropout in attention and feed-forward blocks.
    deep_supervision : bool
        Apply the head to every decoder layer's queries and train on all of them, as the
        official LCM code does; prediction uses the last layer only.
    """

    n_rois: int = 116
    n_queries: int = 9
    d_model: int = 64
    n_heads: int = 4
    d_ffn: int = 128
    n_layers: int = 2
    n_encoder_layers: int = 1
    dropout: float = 0.1
    deep_supervision: bool = True

    def __post_init__(self) -> None:
        for name in ("n_rois", "n_queries", "d_model", "n_heads", "d_ffn", "n_layers"):
            value = getattr(self, name)
            # A bool is an int to Python: true would be a width of 1.
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                # No hint here: where the value came from (a config, an option, a model.json)
                # is the caller's to say (config_from_settings, checked_config).
                raise ConfigError(f"model.{name}: expected a positive integer, got {value!r}.")
        if self.n_rois < 2:
            raise ConfigError(f"model.n_rois: expected at least 2 regions, got {self.n_rois}.")
        if not isinstance(self.n_encoder_layers, int) or self.n_encoder_layers < 1:
            raise ConfigError(
                f"model.n_encoder_layers: expected an integer >= 1, got {self.n_encoder_layers!r}.",
                hint="The masked-ROI reconstruction objective needs at least one ROI-mixer layer.",
            )
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"model: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}).",
                hint="Choose n_heads among the divisors of d_model.",
            )
        # float("0.2") passed a string that the model's build then failed on after the load.
        number = isinstance(self.dropout, int | float) and not isinstance(self.dropout, bool)
        if not number or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout: expected a number in [0, 1), got {self.dropout!r}.")
        if not isinstance(self.deep_supervision, bool):
            # The string "no" is true: deep supervision was on when asked off.
            raise ConfigError(
                f"model.deep_supervision: expected true or false, got {self.deep_supervision!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (stored in checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LCMConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`.

        Parameters
        ----------
        values : dict of str to Any
            Field values by name; a missing field takes its default.

        Returns
        -------
        LCMConfig
            Validated as any new config (a size below 1 raises :class:`ConfigError` too).
        """
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(
                f"model config: unknown keys {sorted(unknown)}.",
                hint=f"Known keys: {sorted(f.name for f in dataclasses.fields(cls))}.",
            )
        return cls(**values)

    def replace(self, **changes: Any) -> LCMConfig:
        """A copy with ``changes`` applied (validated again).

        Parameters
        ----------
        **changes
            New values of fields, by name.

        Returns
        -------
        LCMConfig
        """
        return dataclasses.replace(self, **changes)


# Architecture presets. "big" is LCM-Big of the paper: 32 decoder layers of width 2048 with an
# FFN of 768 give ~1.175e9 parameters; the FFN is deliberately narrow, as in the official code.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 64, "n_heads": 4, "d_ffn": 128, "n_layers": 2, "n_encoder_layers": 1},
    "small": {"d_model": 256, "n_heads": 8, "d_ffn": 768, "n_layers": 6, "n_encoder_layers": 1},
    "base": {"d_model": 768, "n_heads": 8, "d_ffn": 768, "n_layers": 12, "n_encoder_layers": 1},
    "big": {"d_model": 2048, "n_heads": 8, "d_ffn": 768, "n_layers": 32, "n_encoder_layers": 1},
}

# Keys that come from the data, never from the user's overrides.
_DATA_KEYS = ("n_rois", "n_queries")


# Largest config sizes a checkpoint or the model settings may declare: LCM-Big (d_model 2048,
# 32 layers) fits with a wide margin, while an edited model.json or a typo in model.overrides
# cannot make building the module exhaust memory.
CONFIG_LIMITS = {
    "n_rois": 100_000,
    "n_queries": 100_000,
    "d_model": 16_384,
    "n_heads": 1_024,
    "d_ffn": 65_536,
    "n_layers": 1_024,
    "n_encoder_layers": 1_024,
}


# How a user names the model settings, for hints: the config file's keys. A verb that takes them
# as options passes its own spelling (lcm pretrain: --model's keys; lcm model-info: --overrides).
CONFIG_NAMES = {
    "preset": "model.preset in the config",
    "overrides": "model.overrides in the config",
}


def config_from_settings(
    model_settings: dict[str, Any],
    n_rois: int,
    n_queries: int,
    names: dict[str, str] | None = None,
) -> LCMConfig:
    """Build the config from the config file's ``model`` section and the data's sizes.

    Parameters
    ----------
    model_settings : dict
        ``{"preset": "tiny" | "small" | "base" | "big", "overrides": {field: value}}``.
    n_rois, n_queries : int
        Set by the atlas and the variable catalogue.
    names : dict of str to str, optional
        How the user gave ``preset`` and ``overrides``, named in hints; default
        :data:`CONFIG_NAMES` (the config file's keys).

    Returns
    -------
    LCMConfig

    Raises
    ------
    ConfigError
        Unknown preset, unknown override key, or an override that sets a data-driven size;
        its hint names the setting to fix as ``names`` says the user gave it.
    """
    names = {**CONFIG_NAMES, **(names or {})}
    overrides_name = names["overrides"]
    unknown = set(model_settings) - {"preset", "overrides"}
    if unknown:
        raise ConfigError(
            f"model: unknown keys {sorted(unknown)}.", hint="Allowed keys: ['overrides', 'preset']."
        )
    preset = model_settings.get("preset", "tiny")
    if preset not in PRESETS:
        raise ConfigError(
            f"model.preset: expected one of {sorted(PRESETS)}, got {preset!r}.",
            hint=f"Pick one in {names['preset']} and adjust it with {overrides_name}.",
        )
    given = model_settings.get("overrides") or {}
    if not isinstance(given, dict):
        raise ConfigError(
            f"model.overrides: expected an object of sizes, got {type(given).__name__} {given!r}.",
            hint=f'Give {overrides_name} as {{"d_model": 256, "n_layers": 4}}, or leave it out.',
        )
    overrides = dict(given)
    big = {
        k: v
        for k, v in overrides.items()
        if k in CONFIG_LIMITS
        and isinstance(v, int)
        and not isinstance(v, bool)
        and v > CONFIG_LIMITS[k]
    }
    if big:
        key, value = next(iter(big.items()))
        raise ConfigError(
            f"model.overrides: {key} {value} is above the limit of {CONFIG_LIMITS[key]}.",
            hint=f"Limits: {CONFIG_LIMITS} (LCM-Big is d_model 2048, 32 layers).",
        )
    fixed = sorted(set(overrides) & set(_DATA_KEYS))
    if fixed:
        raise ConfigError(
            f"model.overrides: {fixed} are set by the atlas and the catalogue, not by overrides.",
            hint=f"Remove them from {overrides_name}.",
        )
    # The atlas and the catalogue set n_rois and n_queries: not offered to the user.
    settable = [f.name for f in dataclasses.fields(LCMConfig) if f.name not in _DATA_KEYS]
    unknown = sorted(set(overrides) - set(settable))
    if unknown:
        close = {k: difflib.get_close_matches(k, settable, n=1) for k in unknown}
        said = [f"{c[0]!r} for {k!r}" for k, c in close.items() if c]
        raise ConfigError(
            f"model.overrides: unknown keys {unknown}.",
            hint=(f"Did you mean {', '.join(said)}? " if said else "")
            + f"Settable in {overrides_name}: {sorted(settable)}.",
        )
    try:
        return LCMConfig.from_dict(
            {**PRESETS[preset], **overrides, "n_rois": n_rois, "n_queries": n_queries}
        )
    except ConfigError as exc:
        raise ConfigError(
            exc.message,
            hint=exc.hint or f"Set it in {overrides_name}, or leave it out for the preset's value.",
        ) from None


def check_model_settings(
    model_settings: dict[str, Any], source: str, names: dict[str, str] | None = None
) -> None:
    """Refuse a config's ``model`` section that no model could be built from.

    :func:`config_from_settings` with placeholder data sizes (the atlas's and the catalogue's
    are known in the jobs only): an unknown override key, a size below 1, a ``d_model`` not
    divisible by ``n_heads``. The pretraining job builds the model hours into a run; the
    workflow and ``lcm run`` call this when the config loads, so ``snakemake -n`` says it.

    Parameters
    ----------
    model_settings : dict
        The config's ``model`` section (``preset``, ``overrides``).
    source : str
        Where the config came from, prefixed to the error message.
    names : dict of str to str, optional
        How the user gave ``preset`` and ``overrides`` (:func:`config_from_settings`).

    Raises
    ------
    ConfigError
        ``<source>: model...``, the key and the fix.
    """
    try:
        config_from_settings(model_settings, LCMConfig.n_rois, LCMConfig.n_queries, names)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}", hint=exc.hint) from None
