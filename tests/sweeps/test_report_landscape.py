"""Loss landscapes: the geometry on a convex problem (surface and 1-D curve), the directions,
and the command on real MLflow runs with real checkpoints of a task model (offline digits)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mlflow import MlflowClient
from torch import nn

from sweeps import cli
from sweeps.landscape import loss_curve, loss_surface, random_directions


def _convex_problem(seed: int = 0):
    """Multinomial logistic regression on overlapping classes: strictly convex, finite minimum."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 5, generator=g)
    y = torch.arange(300) % 3
    x = (centres[y] + 1.5 * torch.randn(300, 5, generator=g)).double()
    torch.manual_seed(seed)
    model = nn.Linear(5, 3).double()
    opt = torch.optim.LBFGS(
        model.parameters(),
        lr=1,
        max_iter=500,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    grad = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert grad < 1e-6  # trained to the minimum
    return model, [(x[:150], y[:150]), (x[150:], y[150:])]


def test_convex_problem_has_its_minimum_at_the_centre():
    model, batches = _convex_problem()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    land = loss_surface(model, batches, span=0.5, steps=11, seed=3)
    assert land.argmin() == (0.0, 0.0)
    with torch.no_grad():
        full = F.cross_entropy(
            model(torch.cat([b[0] for b in batches])), torch.cat([b[1] for b in batches])
        )
    assert land.centre_loss == pytest.approx(float(full), rel=1e-6)
    i, j = land.centre
    # convex along both axes: the loss rises on every step away from the centre
    assert np.all(np.diff(land.loss[i, j:]) > 0) and np.all(np.diff(land.loss[i, : j + 1]) < 0)
    assert np.all(np.diff(land.loss[i:, j]) > 0) and np.all(np.diff(land.loss[: i + 1, j]) < 0)
    for n, p in model.named_parameters():  # the weights are restored
        assert torch.equal(p, before[n])
    assert land.accuracy is not None and land.accuracy.shape == (11, 11)


def test_a_model_off_its_minimum_does_not_have_it_at_the_centre():
    model, batches = _convex_problem()
    d1, d2 = random_directions(model, seed=3)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.add_(0.3 * d1[n])  # move the centre along the first direction
    land = loss_surface(model, batches, span=0.5, steps=11, directions=(d1, d2))
    alpha, beta = land.argmin()
    assert alpha == pytest.approx(-0.3) and beta == pytest.approx(0.0)


def test_1d_curve_of_a_convex_problem_has_its_minimum_at_0():
    model, batches = _convex_problem()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    curve = loss_curve(model, batches, span=0.5, steps=21, seed=3)
    assert curve.argmin() == 0.0 and curve.alphas[curve.centre] == 0.0
    c = curve.centre
    assert np.all(np.diff(curve.loss[c:]) > 0) and np.all(np.diff(curve.loss[: c + 1]) < 0)
    with torch.no_grad():
        full = F.cross_entropy(
            model(torch.cat([b[0] for b in batches])), torch.cat([b[1] for b in batches])
        )
    assert curve.centre_loss == pytest.approx(float(full), rel=1e-6)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n])
    assert curve.accuracy is not None and curve.accuracy.shape == (21,)


def test_1d_curve_finds_a_minimum_off_the_centre_and_is_the_surfaces_middle_line():
    model, batches = _convex_problem()
    d1, d2 = random_directions(model, seed=3)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.add_(0.2 * d1[n])
    curve = loss_curve(model, batches, span=0.5, steps=21, direction=d1)
    assert curve.argmin() == pytest.approx(-0.2)
    # the default direction is the surface's first one (same seed): the curve is its η = 0 line
    land = loss_surface(model, batches, span=0.5, steps=11, seed=3)
    coarse = loss_curve(model, batches, span=0.5, steps=11, seed=3)
    assert np.allclose(coarse.loss, land.loss[land.centre[0]], rtol=1e-12)


def test_directions_are_filter_normalised_seeded_and_skip_1d_parameters():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    d1, d2 = random_directions(model, seed=7)
    again, _ = random_directions(model, seed=7)
    other, _ = random_directions(model, seed=8)
    for name, p in model.named_parameters():
        assert torch.equal(d1[name], again[name])
        if p.dim() == 1:
            assert not d1[name].any() and not d2[name].any()
            continue
        w = p.detach().flatten(1).norm(dim=1)
        assert torch.allclose(d1[name].flatten(1).norm(dim=1), w, rtol=1e-5)
        assert torch.allclose(d2[name].flatten(1).norm(dim=1), w, rtol=1e-5)
        assert not torch.equal(d1[name], d2[name]) and not torch.equal(d1[name], other[name])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"steps": 10}, "steps: expected an odd number"), ({"span": 0.0}, "span: expected")],
)
def test_bad_grid_arguments(kwargs, message):
    model, batches = _convex_problem()
    with pytest.raises(ValueError, match=message):
        loss_surface(model, batches, **kwargs)
    with pytest.raises(ValueError, match=message):
        loss_curve(model, batches, **kwargs)


def _trained(data, steps: int, seed: int) -> nn.Module:
    from models import tasks

    torch.manual_seed(seed)
    model = tasks.get("digits-lenet5").build_model(data)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step, (x, y) in enumerate(data.batches("train", 64, seed=seed)):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if step == steps:
            break
    return model


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """Real runs: digits-lenet5 weights after a few steps, logged as checkpoint/best.pt (two
    runs of different training, one run without a checkpoint)."""
    from models import tasks

    data = tasks.get("digits-lenet5").load()
    tmp_path = tmp_path_factory.mktemp("landscape")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("land", artifact_location=(tmp_path / "art").as_uri())
    with_ckpt = client.create_run(exp).info.run_id
    other = client.create_run(exp).info.run_id
    without = client.create_run(exp).info.run_id
    for rid, method in ((with_ckpt, "standard"), (other, "dropattack"), (without, "standard")):
        client.log_param(rid, "task", "digits-lenet5")
        client.log_param(rid, "method", method)
    for rid, model in ((with_ckpt, _trained(data, 10, 0)), (other, _trained(data, 30, 1))):
        folder = tmp_path / rid
        folder.mkdir()
        torch.save(model.state_dict(), folder / "best.pt")
        client.log_artifact(rid, str(folder / "best.pt"), "checkpoint")
    client.set_tag(other, "dropattack.variant", "dropattack_ih")
    return uri, with_ckpt, without, other


def test_landscape_command_on_a_logged_checkpoint(digits_run, tmp_path, capsys):
    uri, rid, _, _ = digits_run
    out = tmp_path / "out"
    argv = [
        "landscape",
        rid,
        "--mlflow-uri",
        uri,
        "--steps",
        "5",
        "--span",
        "0.5",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    data = json.loads((out / "landscape.json").read_text())
    loss = np.array(data["runs"][rid]["loss"])
    assert loss.shape == (5, 5) and np.isfinite(loss).all() and loss.std() > 0
    assert (out / "landscape.png").stat().st_size > 10_000
    logged = {a.path for a in MlflowClient(uri).list_artifacts(rid, "landscape")}
    assert logged == {
        "landscape/landscape.png",
        "landscape/landscape.json",
        "landscape/landscape-1d.png",
    }
    printed = capsys.readouterr().out
    assert "centre loss" in printed
    # the default 512 samples of a 179-example test set: it says what it really used
    assert f"{rid}: digits-lenet5 standard: 179 of the 179 test examples" in printed
    assert data["split"] == "test" and data["samples"] == 179
    assert data["runs"][rid]["samples"] == data["runs"][rid]["split_size"] == 179


def test_landscape_other_grid_span_draw_both_runs_and_print_no_progress_bar(
    digits_run, tmp_path, capfd
):
    """The fixed form: RUN_ID --other RUN_ID --grid N --span S; both runs on one 1-D axis."""
    uri, rid, _, other = digits_run
    out = tmp_path / "out"
    argv = ["landscape", rid, "--other", other, "--grid", "5", "--span", "0.5"]
    argv += ["--samples", "128", "--mlflow-uri", uri, "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capfd.readouterr()
    text = printed.out + printed.err
    assert "Downloading artifacts" not in text and "%|" not in text  # MLflow's tqdm bar
    assert text.count("1-D curve minimum at") == 2
    data = json.loads((out / "landscape.json").read_text())
    assert list(data["runs"]) == [rid, other] and data["grid"] == 5 and data["span"] == 0.5
    for run in data["runs"].values():
        assert np.array(run["loss"]).shape == (5, 5)
        alphas, loss = np.array(run["curve"]["alphas"]), np.array(run["curve"]["loss"])
        assert alphas.shape == loss.shape == (9,) and alphas[0] == -0.5 and alphas[-1] == 0.5
        assert loss[4] == pytest.approx(run["loss"][2][2])  # δ = 0 is the surface's centre
    curves = [np.array(r["curve"]["loss"]) for r in data["runs"].values()]
    assert not np.allclose(curves[0], curves[1])  # two different trained models
    assert (out / "landscape-1d.png").stat().st_size > 10_000
    for run_id in (rid, other):
        logged = {a.path for a in MlflowClient(uri).list_artifacts(run_id, "landscape")}
        assert "landscape/landscape-1d.png" in logged


@pytest.mark.parametrize(("flag", "value"), [("--grid", "4"), ("--grid", "x"), ("--span", "0")])
def test_landscape_rejects_a_bad_grid_or_span_in_one_line(
    digits_run, tmp_path, capsys, flag, value
):
    uri, rid, _, _ = digits_run
    argv = ["landscape", rid, flag, value, "--mlflow-uri", uri, "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --grid/--steps: expected an odd number" in err or "--span: expected" in err


def test_landscape_command_explains_a_missing_checkpoint_or_run(digits_run, tmp_path, capsys):
    uri, _, without, _ = digits_run
    assert cli.main(["landscape", without, "--mlflow-uri", uri, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"run {without} has no artifact checkpoint/best.pt" in err and "re-run" in err
    assert cli.main(["landscape", "f" * 32, "--mlflow-uri", uri, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no MLflow run" in err and "`dropattack runs EXPERIMENT --mlflow-uri" in err


def test_landscapes_of_two_runs_share_levels_colours_and_z_range():
    """Two runs with losses on different ranges are drawn on one scale, to compare by eye."""
    from sweeps.landscape import Landscape, landscape_figure

    coords = np.linspace(-1, 1, 5)
    bowl = coords[None, :] ** 2 + coords[:, None] ** 2
    lands = [("flat", Landscape(coords, coords, 0.1 + 0.1 * bowl)),
             ("sharp", Landscape(coords, coords, 0.5 + 3.0 * bowl))]  # fmt: skip
    fig = landscape_figure(lands)
    contours = [ax for ax in fig.axes if ax.get_title().endswith("loss contours")]
    surfaces = [ax for ax in fig.axes if ax.name == "3d"]
    assert len(contours) == len(surfaces) == 2
    levels = [ax.collections[0].levels for ax in contours]
    np.testing.assert_array_equal(levels[0], levels[1])
    assert levels[0][0] == pytest.approx(0.1) and levels[0][-1] == pytest.approx(6.5)
    norms = [(c.norm.vmin, c.norm.vmax) for ax in (*contours, *surfaces) for c in ax.collections]
    assert len(norms) >= 4 and norms == [pytest.approx((0.1, 6.5))] * len(norms)
    assert surfaces[0].get_zlim() == surfaces[1].get_zlim() == pytest.approx((0.1, 6.5))


def test_landscape_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["landscape", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: test)", "(default: 512)", "(default: 256)", "(default: 21)",
                  "(default: 1.0)", "(default: 0)", "(default: RUNS_DIR/landscape)"):  # fmt: skip
        assert shown in text


def test_landscape_follows_the_thread_rule_and_reports_progress(
    digits_run, tmp_path, capsys, monkeypatch
):
    """``--threads`` (or $DROPATTACK_THREADS, as for ``train``) sets torch's threads, and each
    run's curve and grid say how far they got, a line per quarter."""
    uri, rid, _, _ = digits_run
    before = torch.get_num_threads()
    monkeypatch.setenv("DROPATTACK_THREADS", "1")
    argv = ["landscape", rid, "--grid", "5", "--span", "0.5", "--samples", "64"]
    argv += ["--mlflow-uri", uri, "--out", str(tmp_path / "out"), "--no-log"]
    try:
        assert cli.main(argv) == 0
        assert torch.get_num_threads() == 1
        assert cli.main([*argv, "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("landscape of 1 run(s): a 5x5 grid and a 9-point curve each, 1 thr")
    grid = [line for line in lines if f"{rid[:8]}: grid" in line]
    assert grid[:4] == [f"  {rid[:8]}: grid {n}/25 points" for n in (7, 13, 19, 25)]
    assert f"  {rid[:8]}: 1-D curve 9/9 points" in lines


def test_surface_progress_is_called_once_per_point():
    model, batches = _convex_problem()
    seen: list[tuple[int, int]] = []
    loss_surface(model, batches, steps=3, span=0.5, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 9) for i in range(1, 10)]
