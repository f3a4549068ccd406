"""The variable catalogue: brain–environment variables and how each dataset codes them.

``config/variables.yaml`` lists each variable's kind, domain, units and allowed range or levels,
and per dataset the source column and its transform. :func:`load_catalogue` validates the file;
:func:`lcm.store.phenotype.read_phenotype` applies it to a dataset's phenotype table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from jsonschema.exceptions import best_match

from lcm.exceptions import ConfigError
from lcm.io.file_kind import not_a_file
from lcm.io.store_columns import reserved_names
from lcm.io.yaml_text import load_yaml_text
from lcm.schema_errors import describe as describe_error
from lcm.schema_errors import hint as schema_hint

# The first words of each file ``lcm run`` writes in OUTPUT_DIR (config.yaml, variables.yaml);
# the first line of a catalogue it wrote names the dataset whose coding it generated.
RUN_MARK = "# Written by `lcm run`"
_GENERATED_RE = re.compile(re.escape(RUN_MARK) + r": .* with a coding for dataset '(\w+)'")

Kind = Literal["continuous", "binary", "categorical", "ordinal"]
KINDS = ("continuous", "binary", "categorical", "ordinal")
DOMAINS = ("behavioural", "physiological", "sociodemographic", "clinical")
# Values that range_midpoint reads: "26-30" (its midpoint) and "90+" (90).
_RANGE_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*$")
_PLUS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*\+\s*$")
# What pandas and R read as a number; Python's float() also takes 1_000 and non-ASCII digits.
_NUMBER_RE = re.compile(
    r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*|\s*[+-]?(?:inf|infinity|nan)\s*", re.I | re.A
)


def parse_number(text: str) -> float | None:
    """``text`` as a number, as a table reader reads one; None where it is none.

    Python's ``float`` also reads ``1_000`` (1000) and digits of other scripts, which no
    spreadsheet or pandas writes as a number: those are none here.

    Parameters
    ----------
    text : str
        A table cell.

    Returns
    -------
    float or None
    """
    return float(text) if _NUMBER_RE.fullmatch(text) else None


@dataclass(frozen=True)
class Variable:
    """One brain–environment variable.

    Attributes
    ----------
    name : str
        Catalogue name (also the column name in the store's variables table).
    kind : {"continuous", "binary", "categorical", "ordinal"}
    domain : {"behavioural", "physiological", "sociodemographic", "clinical"}
    units : str
        Units after the transform ("" for categorical).
    range : tuple of float or None
        Allowed [min, max] (continuous and ordinal).
    levels : tuple of str
        Allowed levels (binary: exactly two, the second is the positive class; categorical: >= 2).
    """

    name: str
    kind: Kind
    domain: str
    units: str = ""
    range: tuple[float, float] | None = None
    levels: tuple[str, ...] = ()

    @property
    def is_numeric(self) -> bool:
        """True for continuous and ordinal variables (stored as float64)."""
        return self.kind in ("continuous", "ordinal")


@dataclass(frozen=True)
class ColumnCoding:
    """How one dataset encodes one variable.

    Attributes
    ----------
    column : str
        The phenotype file's column.
    scale : float or None
        Numbers are multiplied by this.
    map : dict
        Source code (as a string) -> level, number, or None: a code of the dataset's own that
        marks a missing value.
    range_midpoint : bool
        Values like "26-30" read as their midpoint, "90+" as 90.
    """

    column: str
    scale: float | None = None
    map: dict[str, Any] = field(default_factory=dict)
    range_midpoint: bool = False

    def number(self, value: object) -> float | None:
        """``value`` (a cell, or the level a code maps to) as a number before ``scale``.

        ``"26-30"`` is 28 and ``"90+"`` is 90 with ``range_midpoint``; None where ``value``
        is no number.

        Parameters
        ----------
        value : object
            A phenotype cell, or the level a code of ``map`` maps to.

        Returns
        -------
        float or None
            The number, not yet multiplied by ``scale``.
        """
        text = str(value)
        if self.range_midpoint:
            if m := _RANGE_RE.match(text):
                return (float(m.group(1)) + float(m.group(2))) / 2
            if m := _PLUS_RE.match(text):
                return float(m.group(1))
        return parse_number(text)


@dataclass(frozen=True)
class DatasetCoding:
    """How one dataset's phenotype file maps onto the catalogue."""

    id_column: str
    site_column: str | None
    columns: dict[str, ColumnCoding]


@dataclass(frozen=True)
class Catalogue:
    """The validated catalogue."""

    variables: dict[str, Variable]
    datasets: dict[str, DatasetCoding]
    path: str = ""
    # The dataset whose coding `lcm run` generated from its participants.tsv (none: "").
    generated: str = ""

    def coding(self, dataset: str) -> DatasetCoding:
        """The coding of ``dataset``; raise :class:`ConfigError` if the catalogue lacks it.

        Parameters
        ----------
        dataset : str
            A dataset name, as under ``datasets:`` in the catalogue.

        Returns
        -------
        DatasetCoding
            How that dataset's phenotype file maps onto the catalogue's variables.

        Raises
        ------
        ConfigError
            Naming the catalogue file and the datasets it has, when ``dataset`` is not among them.
        """
        if dataset not in self.datasets:
            raise ConfigError(
                f"Variable catalogue {self.path} has no entry for dataset {dataset!r} "
                f"(has {sorted(self.datasets)}).",
                hint=f"Add datasets.{dataset} with id_column and columns to the catalogue.",
            )
        return self.datasets[dataset]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of the variables (stored in checkpoints and Parquet metadata)."""
        return {
            name: {
                "kind": v.kind,
                "domain": v.domain,
                "units": v.units,
                "range": list(v.range) if v.range else None,
                "levels": list(v.levels),
            }
            for name, v in self.variables.items()
        }


def variables_spec(stored: dict[str, Any]) -> dict[str, Any]:
    """The ``variables:`` section of a catalogue YAML from :meth:`Catalogue.to_dict`'s form.

    ``to_dict`` (a checkpoint's ``model.json``, the store's Parquet metadata) writes every key
    of every variable, ``range: null`` and ``levels: []`` included, which the catalogue's schema
    refuses; this keeps the keys the variable's kind takes, as :func:`load_catalogue` reads them
    back to the same :class:`Variable`.

    Parameters
    ----------
    stored : dict
        Variable name -> its :meth:`Catalogue.to_dict` entry (``kind``, ``domain``, ``units``,
        ``range``, ``levels``).

    Returns
    -------
    dict
        Variable name -> the entry as a catalogue YAML gives it, in ``stored``'s order.
    """
    spec: dict[str, Any] = {}
    for name, var in stored.items():
        entry: dict[str, Any] = {"kind": var["kind"], "domain": var["domain"]}
        if var.get("units"):
            entry["units"] = var["units"]
        if var["kind"] in ("continuous", "ordinal"):
            if var.get("range") is not None:
                entry["range"] = [float(x) for x in var["range"]]
        else:
            entry["levels"] = [str(x) for x in var.get("levels") or ()]
        spec[name] = entry
    return spec


def load_catalogue(path: str | Path) -> Catalogue:
    """Read and validate a catalogue YAML file.

    Parameters
    ----------
    path : str or pathlib.Path
        The catalogue YAML (``variables:`` in the config, or the one ``lcm run`` wrote).

    Returns
    -------
    Catalogue
        Its variables and dataset codings, with ``path`` and the dataset whose coding ``lcm run``
        generated (``generated``, "" for a catalogue of the user's).

    Raises
    ------
    ConfigError
        Naming the file, the key and the rule broken.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Variable catalogue {not_a_file(path)}: {path}",
            hint="Give the path of a catalogue YAML (the workflow's is `variables:` in config; "
            "config/variables.yaml of the repository is an example).",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Cannot read the variable catalogue {path}: {exc}",
            hint="It must be a readable UTF-8 YAML file.",
        ) from exc
    return parse_catalogue(text, path)


def parse_catalogue(text: str, path: str | Path) -> Catalogue:
    """A catalogue's YAML text, validated as :func:`load_catalogue` validates its file.

    ``lcm run`` checks the catalogue it generates before writing it, so a refused run leaves
    no new ``variables.yaml``.

    Parameters
    ----------
    text : str
        The catalogue YAML.
    path : str or pathlib.Path
        The file it is (or will be) read from, named in errors and kept as ``path``.

    Returns
    -------
    Catalogue
        As :func:`load_catalogue` returns it.

    Raises
    ------
    ConfigError
        Naming ``path``, the key and the rule broken.
    """
    path = Path(path)
    try:
        raw = load_yaml_text(text, f"Variable catalogue {path}") or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    _refuse_booleans(path, raw)
    validate_catalogue(raw, str(path))
    variables = {
        name: _parse_variable(path, name, spec) for name, spec in _mapping(path, raw, "variables")
    }
    _refuse_case_twins(path, list(variables))
    datasets = {
        name: _parse_dataset(path, name, spec, variables)
        for name, spec in _mapping(path, raw, "datasets")
    }
    generated = _GENERATED_RE.match(text.partition("\n")[0])
    return Catalogue(
        variables=variables,
        datasets=datasets,
        path=str(path),
        generated=generated.group(1) if generated else "",
    )


def generated_header(source: str | Path, dataset: str) -> str:
    """First line of a catalogue ``lcm run`` writes: ``source`` with a coding it generated for
    ``dataset`` (read back as :attr:`Catalogue.generated`).

    Parameters
    ----------
    source : str or pathlib.Path
        The catalogue the coding was added to.
    dataset : str
        The dataset whose coding was generated from its ``participants.tsv``.

    Returns
    -------
    str
        The comment line, without its newline.
    """
    return (
        f"{RUN_MARK}: {source} with a coding for dataset {dataset!r} (the participants.tsv "
        "columns named like catalogue variables, and task labels)."
    )


def parse_variable(source: str | Path, name: str, spec: Any) -> Variable:
    """One ``variables.<name>`` entry, checked as :func:`load_catalogue` checks it.

    Parameters
    ----------
    source : str or pathlib.Path
        The catalogue file the entry comes from, named in errors.
    name : str
        The variable's name.
    spec : Any
        The entry as parsed from YAML (a mapping of ``kind``, ``domain``, ``units``, ``range``,
        ``levels``).

    Returns
    -------
    Variable
        The checked variable.

    Raises
    ------
    ConfigError
        Naming ``source``, the variable and the key that breaks a rule (a reserved name, an
        unknown key, a kind or domain not known).
    """
    return _parse_variable(Path(source), name, spec)


def catalogue_schema() -> dict[str, Any]:
    """The catalogue's JSON Schema (``lcm/schemas/variables.schema.yaml``) as a dict."""
    text = resources.files("lcm.schemas").joinpath("variables.schema.yaml").read_text()
    return yaml.safe_load(text)


def validate_catalogue(raw: Any, source: str) -> None:
    """Check a parsed catalogue against its JSON Schema.

    Parameters
    ----------
    raw : Any
        The catalogue as parsed from YAML.
    source : str
        Where it came from (its file), named in the error.

    Raises
    ------
    ConfigError
        Naming ``source``, the key path, the value received and the rule broken.
    """
    tree = catalogue_schema()
    validator = jsonschema.Draft202012Validator(tree)
    # best_match descends into oneOf/anyOf: a column coding's typo is named as the key it is,
    # not as "... is not valid under any of the given schemas" followed by the whole schema.
    err = best_match(validator.iter_errors(raw))
    if err is None:
        return
    raise ConfigError(
        describe_error(err, source),
        hint=schema_hint(
            err, "See the comments at the top of config/variables.yaml for each key.", tree
        ),
    )


def _refuse_booleans(path: Path, raw: Any) -> None:
    """Refuse YAML booleans among levels and map codes, before the schema names them vaguely.

    YAML 1.1 (PyYAML) reads unquoted yes/no/on/off/true/false as booleans: ``levels: [no, yes]``
    became the levels "False" and "True", and ``map: {"1": yes}`` mapped code 1 to "True", so
    that no phenotype value matched what the user wrote. Malformed parts are left to the schema.
    """
    fix = "Quote them: 'yes', 'no' (YAML reads unquoted yes/no/on/off/true/false as booleans)."
    for name, spec in _items(raw, "variables"):
        levels = spec.get("levels")
        if isinstance(levels, list) and any(isinstance(x, bool) for x in levels):
            raise ConfigError(
                f"{path}: variables.{name}.levels: {levels!r} holds YAML booleans, not the "
                "levels as written.",
                hint=fix,
            )
    for dataset, spec in _items(raw, "datasets"):
        for var, col in _items(spec, "columns"):
            mapping = col.get("map")
            if not isinstance(mapping, dict):
                continue
            bad = {k: v for k, v in mapping.items() if isinstance(k, bool) or isinstance(v, bool)}
            if bad:
                raise ConfigError(
                    f"{path}: datasets.{dataset}.columns.{var}.map: {bad!r} holds YAML "
                    "booleans, not the codes or levels as written.",
                    hint=fix,
                )


def _items(raw: Any, key: str) -> list[tuple[Any, dict]]:
    """The entries of ``raw[key]`` that are mappings (none when either is not one)."""
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, dict):
        return []
    return [(k, v) for k, v in value.items() if isinstance(v, dict)]


def _mapping(path: Path, raw: dict, key: str) -> list[tuple[str, dict]]:
    value = raw.get(key)
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{path}: '{key}' must be a non-empty mapping.")
    return list(value.items())


def _refuse_case_twins(path: Path, names: list[str]) -> None:
    """Refuse two variables named alike but for case: DuckDB matches column names without
    case, and renamed the second (``Income`` read as ``Income_1``)."""
    seen: dict[str, str] = {}
    for name in names:
        if (first := seen.setdefault(name.lower(), name)) != name:
            raise ConfigError(
                f"{path}: variables {first!r} and {name!r} differ only in case; the feature "
                "store's readers (DuckDB, Spark) match column names without case.",
                hint=f"Rename one of them in {path}, and its entries under datasets.*.columns.",
            )


def _parse_variable(path: Path, name: str, spec: dict) -> Variable:
    where = f"{path}: variables.{name}"
    # A variable is a column of the store's variables table, beside its own columns and the
    # partition keys that readers of the folders add: a clash duplicates a column (Arrow refuses
    # to write it), overwrites the participant IDs, or shadows the partition. DuckDB matches
    # column names without case, so "Site" clashes as well as "site".
    reserved = {r.lower(): r for r in reserved_names()}
    if name.lower() in reserved:
        raise ConfigError(
            f"{where}: the name {name!r} is taken by the feature store's column "
            f"{reserved[name.lower()]!r}; a variable may not be named like a store column "
            f"({', '.join(reserved_names())}).",
            hint=f"Rename variables.{name} in {path}, and its entries under datasets.*.columns "
            f"(e.g. to {name.lower()}_1)."
            + (
                " A dataset's acquisition site is stored from its site_column, not a variable."
                if name.lower() == "site"
                else ""
            ),
        )
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping, got {spec!r}.")
    unknown = set(spec) - {"kind", "domain", "units", "range", "levels"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}.")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: expected one of {KINDS}, got {kind!r}.")
    domain = spec.get("domain")
    if domain not in DOMAINS:
        raise ConfigError(f"{where}.domain: expected one of {DOMAINS}, got {domain!r}.")
    rng = spec.get("range")
    levels = tuple(str(x) for x in spec.get("levels") or ())
    if kind in ("continuous", "ordinal"):
        if rng is not None and (len(rng) != 2 or float(rng[0]) >= float(rng[1])):
            raise ConfigError(f"{where}.range: expected [min, max] with min < max, got {rng!r}.")
        rng = (float(rng[0]), float(rng[1])) if rng is not None else None
    else:
        want = 2 if kind == "binary" else None
        if (want and len(levels) != want) or len(levels) < 2 or len(set(levels)) != len(levels):
            raise ConfigError(
                f"{where}.levels: a {kind} variable needs "
                f"{'exactly two' if want else 'two or more'} distinct levels, got {list(levels)}."
            )
        rng = None
    return Variable(name, kind, domain, str(spec.get("units", "")), rng, levels)


def _parse_dataset(
    path: Path, name: str, spec: dict, variables: dict[str, Variable]
) -> DatasetCoding:
    where = f"{path}: datasets.{name}"
    if not isinstance(spec, dict) or "id_column" not in spec:
        raise ConfigError(f"{where}: expected a mapping with id_column and columns.")
    columns = {}
    for var, col in (spec.get("columns") or {}).items():
        if var not in variables:
            raise ConfigError(
                f"{where}.columns.{var}: not a catalogue variable (have {sorted(variables)})."
            )
        if isinstance(col, str):
            col = {"column": col}
        unknown = set(col) - {"column", "scale", "map", "range_midpoint"}
        if "column" not in col or unknown:
            raise ConfigError(
                f"{where}.columns.{var}: needs 'column'; unknown keys {sorted(unknown)}."
            )
        columns[var] = ColumnCoding(
            column=str(col["column"]),
            scale=float(col["scale"]) if col.get("scale") is not None else None,
            map=_codes(f"{where}.columns.{var}.map", col.get("map") or {}),
            range_midpoint=bool(col.get("range_midpoint", False)),
        )
        _check_coding(f"{where}.columns.{var}", variables[var], columns[var])
    return DatasetCoding(str(spec["id_column"]), spec.get("site_column"), columns)


def _codes(where: str, mapping: dict) -> dict[str, Any]:
    """A map with its codes as the text cells are matched by; two codes of one text refused.

    YAML's ``1: autism`` and ``"1": control`` are two keys, one code once written as text: the
    second silently recoded every subject.
    """
    codes: dict[str, Any] = {}
    for key, value in mapping.items():
        code = str(key)
        if code in codes:
            raise ConfigError(
                f"{where}: code {code!r} is given twice ({key!r} and the quoted {code!r} are one "
                f"code of the file), mapped to {codes[code]!r} and {value!r}.",
                hint="Keep one of the two entries.",
            )
        codes[code] = value
    return codes


def _check_coding(where: str, var: Variable, col: ColumnCoding) -> None:
    """Refuse a coding that no cell could pass: a map value that is no level of ``var``, or
    no number in its range; ``scale`` or ``range_midpoint`` on a variable of levels.

    Without this, a typo in the catalogue (``map: {M: Male}`` for levels [F, M]) was reported
    once per phenotype row, as a bad value of the data.
    """
    null = "or to null to read the code as missing"
    if not var.is_numeric:
        numeric = [k for k in ("scale", "range_midpoint") if getattr(col, k)]
        if numeric:
            raise ConfigError(
                f"{where}: {' and '.join(numeric)} "
                f"{'read' if len(numeric) > 1 else 'reads'} numbers, but {var.name!r} is a "
                f"{var.kind} variable (levels {list(var.levels)}).",
                hint=f"Remove {' and '.join(numeric)}; map the dataset's codes to the levels "
                "with map:.",
            )
        for code, level in col.map.items():
            if level is not None and str(level) not in var.levels:
                raise ConfigError(
                    f"{where}.map.{code}: {level!r} is not a level of {var.kind} variable "
                    f"{var.name!r} (levels {list(var.levels)}).",
                    hint=f"Map code {code!r} to one of {list(var.levels)} as written in "
                    f"variables.{var.name}.levels, {null}.",
                )
        return
    scale = col.scale if col.scale is not None else 1.0
    for code, value in col.map.items():
        if value is None:
            continue
        number = col.number(value)
        if number is None:
            raise ConfigError(
                f"{where}.map.{code}: {value!r} is not a number, but {var.name!r} is "
                f"numeric ({var.kind}).",
                hint=f"Map code {code!r} to a number in {var.units or 'its units'}, {null}.",
            )
        if var.range is not None and not (var.range[0] <= number * scale <= var.range[1]):
            scaled = f" ({number:g} x scale {scale:g})" if col.scale is not None else ""
            raise ConfigError(
                f"{where}.map.{code}: {number * scale:g}{scaled} is outside the range "
                f"[{var.range[0]:g}, {var.range[1]:g}] of {var.name!r}.",
                hint=f"Map code {code!r} to a number in variables.{var.name}.range, {null}.",
            )
