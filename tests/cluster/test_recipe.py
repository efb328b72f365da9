"""docs/reproduce-on-slurm.md, run as written on the test Slurm (:mod:`tests.slurm`), on CPU.

The commands are the page's own: every fenced block marked ``bash recipe``, in order, run as
one bash script (``set -euo pipefail``) from a fresh folder, so the page and this test cannot
drift. Only what the test must shrink is replaced (each replaced text must occur in the page):

- ``/shared/$USER/dropattack`` -> a temp folder; ``https://mlflow.lab.example`` -> the session's
  real ``mlflow server``;
- Table 10's commands: each is Table 3's with the other name (checked, line by line), so the
  test runs Table 3's only (Table 10's spec, and its merged p = 0 cells, have tests of their
  own in tests/sweeps);
- the spec ``table3`` after ``plan`` and ``submit`` -> ``table3.yaml`` in that folder: the
  shipped spec (same name, ``gpus: auto``, GloVe) with ``train_size: 100``, 1 epoch, 2 seeds;
- the allocation sizes: ``--cpus-per-task=8``/``17`` -> 1, ``--time=24:00:00`` -> 10 minutes,
  and no ``--gres=gpu:N``: a test node's GPU is ``/dev/null`` to Slurm, and a job that hands Ray
  a GPU torch cannot see is refused (rightly); ``confirm --seeds 5`` -> 2; the wait loop's
  ``sleep 60`` -> 2.

The data is fetched as the page says, from a stand-in for the public sources on 127.0.0.1
(``$DROPATTACK_DATA_MIRROR``, the mirror data.md describes): an IMDB archive of 200 reviews of
the shared samples and a GloVe zip of 300-d vectors for their commonest words. Not run: the
install block (this checkout's environment is what it makes) and the ``--resume`` example,
the command tests/cluster/test_slurm_requeue.py runs.

Checked beyond exit status 0: ``gpus: auto`` resolved to the CPU in ``plan`` and in the job,
every trial FINISHED in MLflow reading the fetched folder with GloVe embeddings, the
confirmation FINISHED on fresh seeds, and the final report carries the confirmation.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from models.data.sources import ITEMS
from tests.cluster.test_slurm import VENV_BIN, children, slurm, tail  # noqa: F401 - fixture
from tests.sweeps.test_cli_data import SHARED_DATA, _put, _tar, mirror  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reproduce-on-slurm.md"
SPECS = ROOT / "sweeps" / "specs"
REVIEWS = 200


def recipe(page: Path) -> str:
    """The page's ``bash recipe`` blocks, in order, as one script."""
    blocks = re.findall(r"^```bash recipe\n(.*?)^```", page.read_text(), re.M | re.S)
    assert len(blocks) >= 6, f"{page}: expected the recipe's marked blocks, found {len(blocks)}"
    return "\n".join(blocks)


#: Commands that name both tables, as the test runs them (Table 3's part only).
BOTH_TABLES = {
    'echo "table3: job $JOB3, table10: job $JOB10"': 'echo "table3: job $JOB3"',
    '"$JOB3,$JOB10"': '"$JOB3"',
    ' "dropattack-$JOB10.out"': "",
}


def table3_only(script: str) -> str:
    """The script without Table 10's commands, each of which must be Table 3's command with
    the other name; the commands that name both keep Table 3's part (:data:`BOTH_TABLES`)."""
    script = substitute(script, BOTH_TABLES)
    commands = re.split(r"(?<!\\)\n", script)  # a command continued with \ is one
    bare = {re.sub(r"\s+#.*", "", c).strip() for c in commands}  # without trailing comments
    kept = []
    for command in commands:
        if "table10" not in command and "JOB10" not in command:
            kept.append(command)
            continue
        twin = re.sub(r"\s+#.*", "", command).strip()
        twin = twin.replace("table10", "table3").replace("JOB10", "JOB3")
        assert twin in bare, f"Table 10's command has no Table 3 twin: {command!r}"
    return "\n".join(kept)


def substitute(script: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in script, f"the page no longer has {old!r}: update this test's substitutions"
        script = script.replace(old, new)
    return script


def tiny_spec(name: str, folder: Path, space: dict) -> Path:
    """The shipped spec, shrunk: 1 epoch, 2 seeds, its ``space`` replaced by ``space``."""
    spec = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
    assert spec["resources"]["gpus"] == "auto" and spec["defaults"]["vectors"] == "glove"
    spec["defaults"]["epochs"] = 1
    spec["space"] = space
    spec["seeds"] = 2
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def serve_sources(folder: Path) -> None:
    """IMDB's archive and GloVe's zip, small, where the mirror serves their source URLs."""
    with (SHARED_DATA / "imdb" / "Train2500.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:REVIEWS]
    members = {}
    for i, row in enumerate(rows):
        polarity = "pos" if row["label"] == "1" else "neg"
        members[f"aclImdb/{'train' if i % 2 else 'test'}/{polarity}/{i}_7.txt"] = row[
            "text"
        ].encode()
    _put(folder, ITEMS["imdb"].sources[0].url, _tar(members))
    words = Counter(w for r in rows for w in re.findall(r"[a-z']+", r["text"].lower()))
    lines = []
    for word, _ in words.most_common(300):
        digest = hashlib.sha256(word.encode()).digest()
        vector = " ".join(f"{(digest[i % 32] - 128) / 256:.4f}" for i in range(300))
        lines.append(f"{word} {vector}\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("glove.6B.300d.txt", "".join(lines))
    _put(folder, ITEMS["glove"].sources[0].url, buf.getvalue())


def test_the_slurm_recipe_runs_as_written(slurm, mlflow_server, mirror, tmp_path):  # noqa: F811
    if not (SHARED_DATA / "imdb" / "Train2500.csv").is_file():
        pytest.skip(f"{SHARED_DATA} not found: the shared real data samples are absent")
    base, served = mirror
    serve_sources(served)
    work = tmp_path / "login"
    work.mkdir()
    tiny_spec("table3", work, {"train_size": [100]})
    shared = tmp_path / "shared"
    script = substitute(
        table3_only(recipe(PAGE)),
        {
            "/shared/$USER/dropattack": str(shared),
            "https://mlflow.lab.example": mlflow_server.uri,
            "plan table3 ": "plan table3.yaml ",
            "submit table3 ": "submit table3.yaml ",
            "--cpus-per-task=8": "--cpus-per-task=1",
            "--cpus-per-task=17": "--cpus-per-task=1",
            "srun --gres=gpu:1 ": "srun ",
            "--gres=gpu:4 ": "",
            "--time=24:00:00": "--time=10",
            "--seeds 5": "--seeds 2",
            "sleep 60": "sleep 2",
        },
    )
    (work / "recipe.sh").write_text("set -euo pipefail\nset -x\n" + script)
    env = {
        k: v for k, v in slurm.env.items() if not k.startswith(("DROPATTACK_", "MLFLOW_", "RAY_"))
    }
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        USER=env.get("USER", "root"),
        DROPATTACK_DATA_MIRROR=base,
        DROPATTACK_CACHE=str(tmp_path / "cache"),
    )
    done = subprocess.run(
        ["bash", "recipe.sh"], cwd=work, env=env, capture_output=True, text=True, timeout=1500
    )
    out = done.stdout + done.stderr
    logs = "\n".join(f"--- {p.name}\n{tail(p)}" for p in sorted(work.glob("dropattack-*.out")))
    assert done.returncode == 0, f"{out[-6000:]}\n{logs}\n{slurm.logs()}"

    data = shared / "data"
    assert (data / "imdb" / "Train.csv").is_file() and (data / "manifest.json").is_file()
    # gpus: auto on nodes where torch sees no GPU: the plan and the sweep train on the CPU.
    assert out.count("has no GPU: trials run on CPU") >= 1, out[-6000:]
    assert "table3: 4 trials, " in out, out[-6000:]  # 2 methods x 2 seeds
    job_logs = [p.read_text() for p in sorted(work.glob("dropattack-*.out"))]
    assert len(job_logs) == 1, logs
    text = job_logs[0]
    assert "table3: 4 trials on CPU, 1 CPU a trial" in text, logs
    assert "table3: 4 done (0 before this run), 0 failed" in text, logs

    client = MlflowClient(mlflow_server.uri)
    name, trials = "table3", 4
    parents, kids = children(client, name)
    assert len(parents) == 1 and len(kids) == trials, (name, len(parents), len(kids))
    assert {r.info.status for r in kids} == {"FINISHED"}, name
    roots = {r.data.params.get("data_root", "") for r in kids}
    assert all(root.startswith(f"{data} (") for root in roots), (name, roots)
    assert {r.data.params.get("embedding_init") for r in kids} == {"glove"}, name
    sweep_seeds = {r.data.params["seed"] for r in kids}
    _, confirmed = children(client, f"{name}-confirm")
    assert confirmed and {r.info.status for r in confirmed} == {"FINISHED"}, name
    assert not {r.data.params["seed"] for r in confirmed} & sweep_seeds, name
    report = (work / "runs" / "reports" / name / "report.md").read_text()
    assert "Confirmation sweep: experiment " + f"{name}-confirm" in report, report[-3000:]
    assert "Not confirmed yet" not in report
