"""Stand-ins for docker and apptainer that behave like fMRIPrep, and requests to run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.connectome import SPACE
from lcm.preprocess.fmriprep_run import FmriprepRequest

IMAGE = "nipreps/fmriprep:25.2.7"
# What the docker stand-in's `docker image inspect` answers for any image (unless STANDIN_EXPECT
# sets "repo_digests" or "inspect_exit"): the registry digest of the tag when it was pulled.
IMAGE_DIGEST = "sha256:" + "5e" * 32
IMAGE_ID = "sha256:" + "1d" * 32

# One stand-in for both tools: it logs its argv, answers fmriprep-docker's probes, checks the
# final command against STANDIN_EXPECT and writes fMRIPrep-named outputs into the /out mount.
# fMRIPrep reads the last --output-spaces: its words must be STANDIN_EXPECT's "spaces" (default:
# "space" alone). STANDIN_EXPECT may also set "docker_mem" (the MB Docker reports: under 8000
# the wrapper asks "Continue anyway?" unless --mem_mb is given) and "exit" (fMRIPrep fails with
# that code, after a line on stderr, as a crashed nipype node or an OOM kill would, or docker
# itself when it could not pull the image: 125) and "daemon_down" (see below).
# `docker image inspect` renders the {{json .RepoDigests}} and {{json .Id}} actions of its
# --format as docker does, from STANDIN_EXPECT's "repo_digests" (default: IMAGE's name at
# IMAGE_DIGEST) or exits "inspect_exit" (no such image).
STANDIN = r"""
import json, os, shutil, sys
from pathlib import Path

tool = Path(sys.argv[0]).name
argv = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a") as fh:
    fh.write(json.dumps([tool, *argv]) + "\n")
expect = json.loads(os.environ["STANDIN_EXPECT"])

def fail(msg):
    sys.stderr.write(f"stand-in {tool}: {msg}\n")
    sys.exit(2)

def value_after(flag):
    if flag not in argv:
        fail(f"missing {flag}")
    return argv[argv.index(flag) + 1]

if tool == "docker":
    # "daemon_down": "all" fails every `docker version` (LCM's probe and the wrapper's),
    # "wrapper" only the wrapper's plain one (LCM's probe passes, fmriprep-docker stops).
    down = expect.get("daemon_down")
    if argv[:1] == ["version"] and (down == "all" or (down == "wrapper" and argv == ["version"])):
        sys.stderr.write("Cannot connect to the Docker daemon. Is the docker daemon running?\n")
        sys.exit(1)
    if argv == ["version"]:
        print("Client: Docker Engine\n Version: 27.0.0\nServer: Docker Engine\n Version: 27.0.0")
        sys.exit(0)
    if argv[:2] == ["images", "-q"]:
        print("0123456789ab")
        sys.exit(0)
    if argv[:3] == ["run", "--rm", "--entrypoint=free"]:
        print("               total        used        free")
        mem = expect.get("docker_mem", 64000)
        print(f"Mem:           {mem}        1000       {mem}")
        sys.exit(0)
    if argv[:2] == ["version", "--format"]:
        print("27.0.0")
        sys.exit(0)
    if argv[:2] == ["image", "inspect"]:
        if expect.get("inspect_exit"):
            fail(f"Error: No such image: {argv[-1]}")
        name = argv[-1].split(":")[0]
        digests = expect.get("repo_digests", [f"{name}@__IMAGE_DIGEST__"])
        fmt = value_after("--format")
        fmt = fmt.replace("{{json .RepoDigests}}", json.dumps(digests))
        print(fmt.replace("{{json .Id}}", json.dumps("__IMAGE_ID__")))
        sys.exit(0)
    if argv[:2] != ["run", "--rm"]:
        fail(f"unexpected call {argv}")
    if "-it" in argv:
        fail("a TTY was requested in a batch job")
    mounts = {}
    for i, a in enumerate(argv):
        if a == "-v":
            host, target = argv[i + 1].split(":")[:2]
            mounts[target] = host
    if mounts.get("/opt/freesurfer/license.txt") != expect["license"]:
        fail(f"license mount {mounts.get('/opt/freesurfer/license.txt')}")
    if mounts.get("/scratch") != expect["work"] or value_after("-w") != "/scratch":
        fail(f"work dir mount {mounts.get('/scratch')}")
    start = argv.index(expect["image"])
    if argv[start + 1 : start + 4] != ["/data", "/out", "participant"]:
        fail(f"positional arguments {argv[start + 1 : start + 4]}")
    bids, out, work = mounts["/data"], mounts["/out"], mounts["/scratch"]
else:
    if argv[:2] != ["run", "--cleanenv"]:
        fail(f"unexpected call {argv}")
    binds = {}
    for i, a in enumerate(argv):
        if a == "-B":
            host, target = argv[i + 1].split(":")[:2]
            binds[target] = host
    if binds.get("/opt/freesurfer/license.txt") != expect["license"]:
        fail("license bind")
    if binds.get("/work") != expect["work"] or value_after("-w") != "/work":
        fail("work bind")
    tf = expect.get("templateflow")
    # SingularityCE reads SINGULARITYENV_ only, Apptainer APPTAINERENV_
    prefix = "SINGULARITYENV_" if tool == "singularity" else "APPTAINERENV_"
    if tf and (binds.get("/templateflow") != tf
               or os.environ.get(prefix + "TEMPLATEFLOW_HOME") != "/templateflow"):
        fail(f"templateflow bind or {prefix}TEMPLATEFLOW_HOME")
    start = argv.index(expect["image"])
    if argv[start + 1 : start + 4] != ["/data", "/out", "participant"]:
        fail("positional arguments")
    bids, out, work = binds["/data"], binds["/out"], binds["/work"]

# nipype's cache, as fMRIPrep leaves it in its work folder (also when it fails)
node = Path(work) / "fmriprep_25_2_wf" / f"sub_{expect['subject']}_wf" / "bold_wf"
node.mkdir(parents=True, exist_ok=True)
(node / "result_bold_wf.pklz").write_bytes(b"cached node result")
if expect.get("exit"):
    sys.stderr.write("stand-in fMRIPrep: nipype node failed\n")
    sys.exit(expect["exit"])
if value_after("--task-id") != expect.get("task", "rest"):
    fail(f"task {value_after('--task-id')}")
if ("--skip-bids-validation" in argv) != expect.get("skip_validation", False):
    fail("--skip-bids-validation")
subject = value_after("--participant-label")
# fMRIPrep's argparse keeps the last --output-spaces, with every word up to the next option
value_after("--output-spaces")
at = len(argv) - argv[::-1].index("--output-spaces")
spaces = []
while at < len(argv) and not argv[at].startswith("-"):
    spaces.append(argv[at])
    at += 1
space = expect["space"]
if subject != expect["subject"] or spaces != expect.get("spaces", [space]):
    fail(f"subject {subject} / spaces {spaces}")
extra = expect.get("extra", [])
# the docker wrapper moves its own options (-w, --output-spaces) after the pass-through ones
if extra and not any(argv[i : i + len(extra)] == extra for i in range(len(argv))):
    fail(f"extra args {extra} not passed")
out = Path(out)
(out / "dataset_description.json").write_text('{"Name": "fMRIPrep", "DatasetType": "derivative"}')
for raw in sorted(Path(bids).glob(f"sub-{subject}/**/func/*_bold.nii.gz")):
    key = raw.name[: -len("_bold.nii.gz")]
    # fMRIPrep skips a series of 5 volumes or fewer ("Too short BOLD series"), exit 0
    import nibabel
    shape = nibabel.load(raw).shape
    if (shape[3] if len(shape) > 3 else 1) <= 5 - ("--sloppy" in argv):
        sys.stderr.write(f"Too short BOLD series (<= 5 timepoints). Skipping <{raw}>.\n")
        continue
    func = out / raw.parent.relative_to(bids)
    func.mkdir(parents=True, exist_ok=True)
    stem = f"{key}_space-{space}_res-2"
    shutil.copy(raw, func / f"{stem}_desc-preproc_bold.nii.gz")
    shutil.copy(raw, func / f"{stem}_desc-brain_mask.nii.gz")
    (func / f"{stem}_desc-preproc_bold.json").write_text('{"RepetitionTime": 2.0}')
    (func / f"{key}_desc-confounds_timeseries.tsv").write_text("trans_x\n0\n")
""".replace("__IMAGE_DIGEST__", IMAGE_DIGEST).replace("__IMAGE_ID__", IMAGE_ID)


def read_calls(log: Path) -> list[list[str]]:
    """The stand-ins' calls so far, one argv (tool first) each."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def fmriprep_request(tmp_path: Path, runner: str, **kw) -> FmriprepRequest:
    """A request for subject 01 of ``tmp_path/raw``, every folder under ``tmp_path``."""
    defaults = dict(
        dataset="tiny",
        bids=tmp_path / "raw",
        subject="01",
        runner=runner,
        image=IMAGE,
        output_space=SPACE,
        derivatives=tmp_path / "deriv",
        work_dir=tmp_path / "work",
    )
    return FmriprepRequest(**{**defaults, **kw})


def expect_standin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra) -> Path:
    """Tell the container stand-ins what subject 01's run must pass; returns the licence."""
    lic = tmp_path / "license.txt"
    lic.write_text("fake license\n")
    expect = {
        "license": str(lic.resolve()),
        "work": str((tmp_path / "work" / "sub-01").resolve()),
        "subject": "01",
        "space": SPACE,
        "image": IMAGE,
        **extra,
    }
    monkeypatch.setenv("STANDIN_EXPECT", json.dumps(expect))
    return lic
