import random

import numpy as np
import pytest
import torch

from graphattn.train import History, TrainConfig, fit, peak_memory_mb, reset_peak_memory, set_seed


def scripted(values, model):
    """train_epoch stamps the epoch number into the weights; evaluate replays ``values``."""
    epoch = {"n": 0}

    def train_epoch():
        epoch["n"] += 1
        with torch.no_grad():
            model.weight.fill_(epoch["n"])
        return 1.0 / epoch["n"]

    def evaluate():
        return {"val_acc": values[epoch["n"] - 1], "val_loss": -values[epoch["n"] - 1]}

    return train_epoch, evaluate


def test_early_stopping_stops_after_patience_and_restores_best():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    values = [0.1, 0.5, 0.4, 0.6, 0.55, 0.6, 0.58, 0.9, 0.95]
    hist = fit(model, opt, *scripted(values, model), TrainConfig(epochs=9, patience=3, progress=False))
    # best is epoch 4 (0.6); the tie at epoch 6 is no improvement; epochs 5, 6, 7 are bad
    assert hist.epochs_run == 7 and hist.stopped_early
    assert [r.epoch for r in hist.rows] == list(range(1, 8))
    assert hist.best_epoch == 4 and hist.best_metrics["val_acc"] == 0.6
    assert torch.all(model.weight == 4)
    assert hist.rows[1].loss == 0.5 and hist.mean_epoch_time_s >= 0


def test_mode_min_and_no_patience_runs_all_epochs():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    values = [0.1, 0.5, 0.4, 0.3, 0.2]  # val_loss = -value: smallest at epoch 2
    cfg = TrainConfig(epochs=5, monitor="val_loss", mode="min", progress=False)
    hist = fit(model, opt, *scripted(values, model), cfg)
    assert hist.epochs_run == 5 and not hist.stopped_early
    assert hist.best_epoch == 2 and torch.all(model.weight == 2)
    assert hist.to_dict()["epochs_run"] == 5


def test_missing_monitor_raises():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="monitor='val_f1'"):
        fit(model, opt, lambda: 0.0, lambda: {"val_acc": 1.0}, TrainConfig(epochs=2, monitor="val_f1", progress=False))


def test_tie_break_prefers_an_equal_monitor_with_a_smaller_second_metric():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    acc = [0.5, 0.7, 0.7, 0.7, 0.6, 0.6]
    loss = [1.0, 0.9, 0.8, 0.85, 0.1, 0.1]
    epoch = {"n": 0}

    def train_epoch():
        epoch["n"] += 1
        with torch.no_grad():
            model.weight.fill_(epoch["n"])
        return 0.0

    def evaluate():
        return {"val_acc": acc[epoch["n"] - 1], "val_loss": loss[epoch["n"] - 1]}

    strict = fit(model, opt, train_epoch, evaluate, TrainConfig(epochs=6, patience=2, progress=False))
    assert strict.best_epoch == 2 and strict.epochs_run == 4  # epochs 3, 4 tie: no improvement
    epoch["n"] = 0
    ties = fit(model, opt, train_epoch, evaluate,
               TrainConfig(epochs=6, patience=2, tie_break="val_loss", progress=False))
    # epoch 3 ties 0.7 with a lower loss (new best, patience reset); 4 ties with a higher one;
    # a lower loss never outweighs a lower accuracy (epochs 5, 6)
    assert ties.best_epoch == 3 and ties.epochs_run == 5 and torch.all(model.weight == 3)
    with pytest.raises(ValueError, match="tie_break='val_f1'"):
        fit(model, opt, train_epoch, evaluate, TrainConfig(epochs=1, tie_break="val_f1", progress=False))


def make_run(seed):
    """A tiny MLP with dropout on random data, shuffled mini-batches and noise from python
    and numpy, so every RNG that a resume must restore is used."""
    set_seed(seed)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def train_epoch():
        total = 0.0
        for idx in torch.randperm(64).split(16):
            noise = torch.from_numpy(np.random.normal(0, 0.1, (len(idx), 5))).float() * random.random()
            loss = torch.nn.functional.cross_entropy(model(x[idx] + noise), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        return total

    def evaluate():
        return {"val_acc": (model(x).argmax(-1) == y).float().mean().item()}

    return model, opt, train_epoch, evaluate


def rows_without_time(hist: History):
    return [(r.epoch, r.loss, r.metrics) for r in hist.rows]


def test_resume_equals_uninterrupted_run(tmp_path):
    exp = {"task": "mlp", "lr": 0.01}
    model_a, opt_a, tr_a, ev_a = make_run(0)
    hist_a = fit(model_a, opt_a, tr_a, ev_a, TrainConfig(epochs=6, progress=False), experiment=exp)

    ckpt = tmp_path / "run" / "ckpt.pt"
    model_b, opt_b, tr_b, ev_b = make_run(0)
    fit(model_b, opt_b, tr_b, ev_b, TrainConfig(epochs=3, progress=False, checkpoint=ckpt), experiment=exp)
    # a fresh process: another seed and fresh weights, everything must come from the checkpoint
    model_c, opt_c, tr_c, ev_c = make_run(123)
    cfg = TrainConfig(epochs=6, progress=False, checkpoint=ckpt, resume=True)
    hist_c = fit(model_c, opt_c, tr_c, ev_c, cfg, experiment=exp)

    assert hist_c.epochs_run == 6
    assert rows_without_time(hist_c) == rows_without_time(hist_a)
    assert hist_c.best_epoch == hist_a.best_epoch and hist_c.best_metrics == hist_a.best_metrics
    state_a, state_c = model_a.state_dict(), model_c.state_dict()
    assert state_a.keys() == state_c.keys()
    assert all(torch.equal(state_a[k], state_c[k]) for k in state_a)
    assert len({r.loss for r in hist_a.rows}) > 1  # the run really trained
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["ckpt.pt"]  # no temp files left behind


def test_resume_with_other_experiment_raises_and_keeps_file(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    model, opt, tr, ev = make_run(0)
    fit(model, opt, tr, ev, TrainConfig(epochs=2, progress=False, checkpoint=ckpt), experiment={"lr": 0.1, "hidden": 8})
    before = ckpt.read_bytes()
    model, opt, tr, ev = make_run(0)
    cfg = TrainConfig(epochs=4, progress=False, checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.1 != now 0\.2.*nothing was overwritten"):
        fit(model, opt, tr, ev, cfg, experiment={"lr": 0.2, "hidden": 8})
    with pytest.raises(ValueError, match="seed: checkpoint '<missing>'"):
        fit(model, opt, tr, ev, cfg, experiment={"lr": 0.1, "hidden": 8, "seed": 1})
    assert ckpt.read_bytes() == before


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt.pt"
    model, opt, tr, ev = make_run(0)
    fit(model, opt, tr, ev, TrainConfig(epochs=2, progress=False, checkpoint=ckpt))
    before = ckpt.read_bytes()
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise RuntimeError("disk died")

    monkeypatch.setattr(torch, "save", crashing_save)
    model, opt, tr, ev = make_run(0)
    with pytest.raises(RuntimeError, match="disk died"):
        fit(model, opt, tr, ev, TrainConfig(epochs=4, progress=False, checkpoint=ckpt, resume=True))
    monkeypatch.setattr(torch, "save", real_save)
    assert ckpt.read_bytes() == before
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_resume_of_finished_early_stopped_run_does_not_train(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    values = [0.5, 0.4, 0.3, 0.2]
    fit(model, opt, *scripted(values, model), TrainConfig(epochs=4, patience=2, progress=False, checkpoint=ckpt))
    calls = []
    cfg = TrainConfig(epochs=10, patience=2, progress=False, checkpoint=ckpt, resume=True)
    hist = fit(model, opt, lambda: calls.append(1) or 0.0, lambda: {"val_acc": 1.0}, cfg)
    assert calls == [] and hist.epochs_run == 3 and hist.best_epoch == 1 and torch.all(model.weight == 1)


def test_resume_without_checkpoint_raises(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = TrainConfig(epochs=2, progress=False, checkpoint=tmp_path / "absent.pt", resume=True)
    with pytest.raises(ValueError, match="does not exist"):
        fit(model, opt, lambda: 0.0, lambda: {"val_acc": 1.0}, cfg)


def test_unwritable_checkpoint_folder_raises_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []
    for path, match in [(blocker / "ckpt.pt", "not writable"), (tmp_path, "is a folder")]:
        with pytest.raises(ValueError, match=match):
            fit(model, opt, lambda: calls.append(1) or 0.0, lambda: {"val_acc": 1.0},
                TrainConfig(epochs=2, progress=False, checkpoint=path))
    assert calls == []


def test_experiment_must_be_json():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="experiment must be a JSON-able dict"):
        fit(model, opt, lambda: 0.0, lambda: {"val_acc": 1.0}, TrainConfig(epochs=1, progress=False),
            experiment={"device": torch.device("cpu")})


@pytest.mark.parametrize("kwargs, field, error", [
    ({"epochs": 0}, "epochs", ValueError),
    ({"epochs": 2.5}, "epochs", TypeError),
    ({"epochs": True}, "epochs", TypeError),
    ({"patience": 0}, "patience", ValueError),
    ({"monitor": ""}, "monitor", ValueError),
    ({"mode": "maximum"}, "mode", ValueError),
    ({"tie_break": ""}, "tie_break", ValueError),
    ({"progress": "yes"}, "progress", TypeError),
    ({"checkpoint": 3}, "checkpoint", TypeError),
    ({"resume": True}, "resume", ValueError),
])
def test_invalid_config_raises_naming_the_field(kwargs, field, error):
    # graphattn.checks' rule: a wrong type is a TypeError, a bad value of the right type a ValueError
    with pytest.raises(error, match=f"^{field}"):
        TrainConfig(**kwargs)


def test_set_seed_reproduces_every_rng():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    set_seed(7)
    first = draw()
    set_seed(7)
    assert draw() == first
    with pytest.raises(ValueError, match="seed"):
        set_seed(-1)


def test_peak_memory_cpu_is_process_peak():
    reset_peak_memory("cpu")  # a documented no-op on CPU
    before = peak_memory_mb("cpu")
    big = torch.ones(64 * 2**20 // 4)  # 64 MiB
    big.add_(1)
    assert peak_memory_mb("cpu") >= before > 10
    with pytest.raises(ValueError, match="device"):
        peak_memory_mb("meta")
