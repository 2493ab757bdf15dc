"""Video SDS of fourreal (optim/sds.py, the adapters' encode_grad/noised) with tiny real adapters."""

from __future__ import annotations

import math

import pytest
import torch

from dummies import svd_dir, wan_i2v_dir, wan_vace_dir
from wanderview.backends.video_adapters import make_video_adapter
from wanderview.data.synthetic_dynamic import dynamic_dataset
from wanderview.methods import fourreal_inputs as inputs
from wanderview.optim import sds as vsds
from wanderview.optim.deformation import FrameDeformation
from wanderview.optim.fourreal_fit import (
    FrameDeformationFitter,
    MotionConfig,
    TemporalFitter,
    new_temporal_field,
)
from wanderview.optim.gaussian_fit import FitConfig
from wanderview.scenes.deformable import DeformableGaussianScene
from wanderview.scenes.gaussians import GaussianScene

FOLDERS = {"wan": wan_i2v_dir, "vace": wan_vace_dir, "svd": svd_dir}
W, H = 48, 32


@pytest.fixture(scope="module", params=sorted(FOLDERS))
def adapter(request):
    # no classifier-free guidance: half the model calls (the CLI test runs Wan with it)
    return make_video_adapter(f"hf:{FOLDERS[request.param]()}", device="cpu", steps=10, guidance_scale=1.0)


@pytest.fixture(scope="module")
def data():
    return dynamic_dataset(width=W, height=H, num_reference=3, num_freeze=4)


def _scene(d, count=400):
    points, colors = inputs.frustum_points(d.freeze_cameras, d.freeze, count, 2.0, 6.0, seed=0)
    scene = GaussianScene.from_points(points, colors, max_sh_degree=1)
    # anisotropic, rotated Gaussians: a sphere's rotation has no gradient
    g = torch.Generator().manual_seed(0)
    scene.log_scales = scene.log_scales.detach() + 0.5 * torch.randn(scene.log_scales.shape, generator=g)
    scene.quats = scene.quats.detach() + 0.3 * torch.randn(scene.quats.shape, generator=g)
    return DeformableGaussianScene.wrap(scene)


def _settings(**kw):
    return vsds.SDSSettings(**{"frames": 5, "seed": 1, **kw})


def test_forward_processes_and_differentiable_encoders(adapter):
    g = torch.Generator().manual_seed(0)
    video = torch.rand(adapter.frame_count(5), 3, 32, 32, generator=g, requires_grad=True)
    z = adapter.encode_grad(video)
    assert torch.allclose(z, adapter.encode(video))  # the no-grad encode is the same encoder
    z.square().mean().backward()
    assert video.grad.abs().sum() > 0
    state = adapter.prepare(video[0].detach(), None, "a", len(video), g)
    x0, noise = torch.randn(z.shape, generator=g), torch.randn(z.shape, generator=g)
    s = float(state.sigmas[3])
    expected = (1 - s) * x0 + s * noise if adapter.name in ("wan", "vace") else x0 + s * noise
    assert torch.allclose(adapter.noised(x0, 3, state, noise), expected)


def test_first_frame_is_the_real_frame_and_gets_no_gradient(adapter):
    T = adapter.frame_count(5)
    render = torch.zeros(T, 3, H, W, requires_grad=True)
    condition = torch.ones(3, H, W)
    g = torch.Generator().manual_seed(0)
    size = vsds.model_input_size(adapter, H, W)
    loss, info = vsds.sds_loss(adapter, render, condition, "", 0.5, g, size, weight=1.0)
    loss.backward()
    assert info["video"].shape == (T, 3, *size)
    assert torch.allclose(info["video"][0], torch.ones(3, *size)) and info["video"][1:].abs().max() == 0
    assert render.grad[0].abs().max() == 0 and render.grad[1:].abs().sum() > 0


def test_shift_or_crop_boxes():
    video = torch.arange(2 * 3 * 40 * 60, dtype=torch.float32).reshape(2, 3, 40, 60)
    g = torch.Generator().manual_seed(0)
    boxes = [vsds.shift_or_crop(video, (10, 15), g)[1] for _ in range(40)]
    shifts = {b for b in boxes if b[2:] == (37, 57)}  # scale 4: crops 3 px smaller at offsets 0..3
    halves = {b for b in boxes if b[2:] == (20, 30)}
    assert shifts and halves and len(shifts) + len(halves) == len(set(boxes))
    assert all(0 <= t <= 3 and 0 <= left <= 3 for t, left, _, _ in shifts)
    out, (t, left, ch, cw) = vsds.shift_or_crop(video, (20, 30), torch.Generator().manual_seed(3))
    assert out.shape == (2, 3, 20, 30)


def test_annealing_goes_from_high_to_low(adapter, data):
    hook = vsds.CanonicalSDS(adapter, _settings(t_max=0.9, t_min=0.1), data.freeze_cameras, data.freeze,
                             data.canonical_index, start=10, end=20)  # fmt: skip
    fractions = [hook.fraction(s) for s in range(10, 20)]
    assert fractions[0] == pytest.approx(0.9) and fractions[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(fractions, fractions[1:]))
    steps = len(adapter.prepare(torch.rand(3, 32, 32), None, "", adapter.frame_count(5), None).timesteps)
    indices = [vsds.schedule_index(f, steps) for f in fractions]
    assert indices[0] < indices[-1] and indices == sorted(indices)  # later steps: less noise
    assert vsds.stage_window(23000, 3000, 0.25) == (18000, 23000)  # the paper's last 5k of 20k
    assert not hook.due(9) and hook.due(10) and hook.due(19) and not hook.due(20)


def test_sds_gradient_reaches_every_gaussian_parameter(adapter, data):
    scene = _scene(data)
    for p in scene.params().values():
        p.requires_grad_(True)
    args = (data.freeze_cameras, data.freeze, data.canonical_index)
    hook = vsds.CanonicalSDS(adapter, _settings(), *args, start=0, end=4)
    loss = hook.loss(scene, 0)
    assert hook.loss(scene, 4) is None and loss.ndim == 0 and math.isfinite(float(loss.detach()))
    loss.backward()
    for name, p in scene.params().items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert hook.history[0]["kind"] == "multiview" and hook.summary()["steps"] == 1


def _canonical_fitter(data, sds):
    scene = _scene(data)
    field = FrameDeformation(len(data.freeze), data.canonical_index, torch.zeros(3), 3.0, 2, 16, 1)
    fit = FitConfig(iterations=4, seed=0, max_gaussians=1000)
    return FrameDeformationFitter(scene, data.freeze_cameras, data.freeze, fit, field, warmup=2, sds=sds)


def test_an_sds_step_changes_the_gaussians_and_weight_zero_does_not(data):
    adapter = make_video_adapter(f"hf:{wan_i2v_dir()}", device="cpu", steps=10, guidance_scale=1.0)
    args = (data.freeze_cameras, data.freeze, data.canonical_index, 0, 1)
    plain = _canonical_fitter(data, None)
    with_sds = _canonical_fitter(data, vsds.CanonicalSDS(adapter, _settings(), *args))
    weight_zero = _canonical_fitter(data, vsds.CanonicalSDS(adapter, _settings(weight=0.0), *args))
    for fitter in (plain, with_sds, weight_zero):
        fitter.step()
    assert "sds" in with_sds.history[0] and "sds" not in plain.history[0]
    assert weight_zero.sds.summary()["steps"] == 1  # the SDS step ran, with weight 0
    for name, p in plain.scene.params().items():
        assert not torch.equal(p, with_sds.scene.params()[name]), name
        assert torch.equal(p, weight_zero.scene.params()[name]), name


def test_motion_sds_runs_both_kinds_and_trains_the_temporal_field(data):
    adapter = make_video_adapter(f"hf:{wan_i2v_dir()}", device="cpu", steps=10, guidance_scale=1.0)
    scene = _scene(data, 200)
    scene.temporal = new_temporal_field(scene, 0.0, 2, 16, 1, 2, 2)
    ref_cams, times = data.reference_cameras, data.reference_times
    hook = vsds.MotionSDS(adapter, _settings(seed=0), ref_cams, data.reference, times, 0, data.freeze_cameras,
                          data.canonical_index, 0, 6)  # fmt: skip
    motion = MotionConfig(iterations=6, seed=0)
    fitter = TemporalFitter(scene, ref_cams, data.reference, times, motion, sds=hook)
    before = [p.detach().clone() for p in scene.temporal.parameters()]
    loss = hook.loss(scene, fitter.means, 0)
    loss.backward()
    grads = [p.grad for p in scene.temporal.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in scene.params().values())  # the canonical Gaussians stay fixed
    scene.temporal.zero_grad(set_to_none=True)
    hook.history.clear()
    fitter.fit(progress=False)
    assert set(hook.summary()["kinds"]) == {"temporal", "multiview"} and hook.summary()["steps"] == 6
    assert all("sds" in record for record in fitter.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, scene.temporal.parameters()))


def test_bad_sds_options_raise_one_sentence():
    from wanderview.errors import ConfigError

    good = {"weight": 5.0, "temporal_weight": 20.0, "fraction": 0.25, "every": 1, "frames": 16,
            "timesteps": "0.98..0.02", "side": 0}  # fmt: skip
    vsds.check_options(**good)
    bad = (("weight", -1.0), ("temporal_weight", math.nan), ("fraction", 1.5), ("every", 0), ("frames", 1),
           ("timesteps", "0.2..0.8"), ("timesteps", "high"), ("side", 8))  # fmt: skip
    for key, value in bad:
        with pytest.raises(ConfigError):
            vsds.check_options(**{**good, key: value})


# ---- through the CLI -------------------------------------------------------------------------------
TINY = ["--canonical-iterations", "6", "--warmup-iterations", "3", "--motion-iterations", "4",
        "--init-points", "300", "--frames", "2", "--sds-fraction", "0.5", "--sds-frames", "5",
        "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def videos(tmp_path_factory, data):
    from wanderview.io.cameras import write_transforms_json
    from wanderview.io.images import write_image

    root = tmp_path_factory.mktemp("fourreal-sds")
    argv = []
    for name, frames, cameras in (("reference", data.reference, data.reference_cameras),
                                  ("freeze", data.freeze, data.freeze_cameras)):  # fmt: skip
        (root / name).mkdir()
        for i, frame in enumerate(frames):
            write_image(root / name / f"{i:05d}.png", frame)
        write_transforms_json(root / f"{name}.json", cameras)
        argv += [f"--{name}-video", str(root / name), f"--{name}-cameras", str(root / f"{name}.json")]
    return argv


def test_cli_runs_sds_with_a_tiny_video_model_and_records_it(videos, tmp_path):
    import json

    from wanderview.cli import main

    out = tmp_path / "run"
    assert main(["fourreal", *videos, "--video-model", f"hf:{wan_i2v_dir()}", "-o", str(out), *TINY]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    sds = manifest["backends"]["sds"]
    assert sds["ran"] and sds["steps"] == 4 and sds["model"].startswith("wan adapter")
    assert sds["canonical"]["steps"] == 2 and sds["canonical"]["window"] == [4, 6]  # last half after warm-up
    assert sds["motion"]["steps"] == 2 and sds["canonical"]["frames"] == 5
    assert any("; video SDS with the wan adapter" in note for note in manifest["notes"])
    assert not any("SDS is off" in note for note in manifest["notes"])
    assert (out / "gaussians.ply").is_file() and (out / "video.mp4").is_file()


def test_cli_bad_sds_values_exit_2_with_one_sentence(videos, tmp_path, capsys):
    from wanderview.cli import main

    out = tmp_path / "bad"
    for extra, words in ((["--sds-fraction", "2"], "--sds-fraction"), (["--sds-every", "0"], "--sds-every"),
                         (["--sds-timesteps", "0.1..0.9"], "--sds-timesteps"),
                         (["--sds-weight", "-1"], "--sds-weight"), (["--sds-frames", "1"], "--sds-frames"),
                         (["--video-model", "hf:/no/such/model"], "/no/such/model")):  # fmt: skip
        code = main(["fourreal", *videos, "-o", str(out), *TINY, *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err and words in err, err
    assert not out.exists()


def test_sds_is_off_without_a_model_or_without_weight():
    from pathlib import Path

    from wanderview.methods.fourreal import Config
    from wanderview.methods.fourreal_sds import sds_settings

    def settings(**kw):
        return sds_settings(Config(reference_video=Path("r"), freeze_video=Path("f"), **kw))

    assert settings() is None
    assert settings(video_model="hf:x", sds_weight=0, sds_temporal_weight=0) is None
    assert settings(video_model="hf:x", sds_fraction=0) is None
    on = settings(video_model="hf:x", prompt="a cat", sds_timesteps="0.9..0.1")
    assert (on.t_max, on.t_min, on.prompt, on.weight, on.temporal_weight) == (0.9, 0.1, "a cat", 5.0, 20.0)
