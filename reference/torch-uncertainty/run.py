"""torch-uncertainty Bayesian LeNet tutorial recipe (mid-2024 tutorial version, as in
tinyvi's docs/design.md, Model and Recipe), one seed per process, CPU, 2 threads, in-distribution metrics only.

usage: venv/bin/python run.py SEED [TAG]
writes results/seed{SEED}{TAG}.json
"""
import json
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from torch import nn, optim

import torch_uncertainty
from torch_uncertainty.datamodules import MNISTDataModule
from torch_uncertainty.losses import ELBOLoss
from torch_uncertainty.models.classification.lenet import bayesian_lenet
from torch_uncertainty.routines import ClassificationRoutine

HERE = Path(__file__).resolve().parent


class Clock(Callback):
    """Wall-clock stamps of the fit phases (sanity check, training epoch, validation)."""

    def __init__(self):
        self.t = {}

    def _stamp(self, k):
        self.t.setdefault(k, time.perf_counter())

    def on_fit_start(self, trainer, pl_module):
        self._stamp("fit_start")

    def on_train_epoch_start(self, trainer, pl_module):
        self._stamp("train_epoch_start")

    def on_validation_epoch_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._stamp("val_start")

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._stamp("val_end")

    def on_train_epoch_end(self, trainer, pl_module):
        self._stamp("train_epoch_end")

    def on_fit_end(self, trainer, pl_module):
        self._stamp("fit_end")


def main(seed: int, tag: str = "") -> None:
    torch.set_num_threads(2)
    seed_everything(seed)  # lightning: seeds python `random`, numpy and torch (workers=False)

    trainer = Trainer(
        accelerator="cpu",
        enable_progress_bar=False,
        max_epochs=1,
        default_root_dir=str(HERE / "runs" / f"seed{seed}"),
        callbacks=[clock := Clock()],
    )
    # DataModule defaults: basic_augment=True -> v2.RandomCrop(28, padding=4),
    # num_workers=1, val_split=None (val set = MNIST test set), eval_ood=False.
    datamodule = MNISTDataModule(root=HERE / "data", batch_size=128, eval_ood=False)
    model = bayesian_lenet(datamodule.num_channels, datamodule.num_classes)  # num_samples=16

    loss = ELBOLoss(
        model=model,
        inner_loss=nn.CrossEntropyLoss(),
        kl_weight=1 / 50000,
        num_samples=3,
    )
    routine = ClassificationRoutine(
        model=model,
        num_classes=datamodule.num_classes,
        loss=loss,
        optim_recipe=optim.Adam(model.parameters(), lr=1e-3),
        is_ensemble=True,
    )

    t0 = time.perf_counter()
    trainer.fit(model=routine, datamodule=datamodule)
    t1 = time.perf_counter()
    res = trainer.test(model=routine, datamodule=datamodule, verbose=False)[0]
    t2 = time.perf_counter()

    c = clock.t
    out = {
        "seed": seed,
        "acc": float(res["test/cls/Acc"]),
        "ece": float(res["test/cal/ECE"]),
        "aece": float(res["test/cal/aECE"]),
        "nll": float(res["test/cls/NLL"]),
        "brier": float(res["test/cls/Brier"]),
        "entropy": float(res["test/cls/Entropy"]),
        "mi": float(res.get("test/ens_MI", float("nan"))),
        "val_acc_end_of_epoch": float(trainer.callback_metrics.get("val/cls/Acc", float("nan"))),
        "fit_seconds": t1 - t0,
        "train_epoch_seconds": c["val_start"] - c["train_epoch_start"],
        "val_seconds": c["val_end"] - c["val_start"],
        "pre_train_seconds": c["train_epoch_start"] - t0,
        "test_seconds": t2 - t1,
        "eval_samples": model.num_samples,
        "versions": {
            "torch": torch.__version__,
            "torch_uncertainty": getattr(torch_uncertainty, "__version__", "0.13.0"),
        },
        "all_test_metrics": {k: float(v) for k, v in res.items()},
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"seed{seed}{tag}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "all_test_metrics"}))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")
