"""Fixtures for tinyvi's torch-uncertainty interchange tests, made by torch-uncertainty 0.13 itself.

usage:
  venv/bin/python make_fixture.py train OUT_DIR [STEPS]
      trains bayesian_lenet(1, 10) for one epoch (or its first STEPS steps) with the tutorial's recipe (ELBOLoss
      kl_weight 1/50000, 3 samples, Adam 1e-3, batch 128; no augmentation), seed 0, on
      ../../data's MNIST, and writes
        OUT_DIR/bayesian_lenet.safetensors   safetensors.torch.save_model(model, …)
        OUT_DIR/bayesian_lenet.json          frozen softmax of the first N MNIST test images
  venv/bin/python make_fixture.py load FILE.safetensors OUT.json
      loads FILE into a fresh bayesian_lenet(1, 10) with safetensors.torch.load_model
      (strict), freezes it and writes its softmax of the same images to OUT.json.

The frozen forward (`model.freeze()`) uses the posterior means only; inputs are
(p/255 - 0.1307)/0.3081, as torch-uncertainty's MNISTDataModule normalises them.
"""
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import safetensors.torch as st
import torch
from torch import nn

import torch_uncertainty
from torch_uncertainty.losses import ELBOLoss
from torch_uncertainty.models.classification.lenet import bayesian_lenet

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "data"
IMAGES = 300  # the first N MNIST test images
SEED = 0


def idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def normalise(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(pixels.astype(np.float32) / np.float32(255.0))
    return ((x - 0.1307) / 0.3081).unsqueeze(1)


def frozen_probs(model) -> list:
    model.eval()
    model.freeze()
    x = normalise(idx(DATA / "t10k-images-idx3-ubyte")[:IMAGES])
    with torch.no_grad():
        logits = model.core_model(x)
    return torch.softmax(logits, dim=1).tolist()


def write_json(out: Path, source: Path, probs: list, extra: dict) -> None:
    doc = {
        "source": source.name,
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "images": f"MNIST test images 0..{IMAGES}",
        "versions": {
            "torch": torch.__version__,
            "torch_uncertainty": getattr(torch_uncertainty, "__version__", "0.13.0"),
            "safetensors": st.__name__ and __import__("safetensors").__version__,
        },
        **extra,
        "probs": [[float(f"{p:.9g}") for p in row] for row in probs],
    }
    out.write_text(json.dumps(doc, indent=0) + "\n")


def train(out_dir: Path, steps: int) -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    images = idx(DATA / "train-images-idx3-ubyte")
    labels = torch.from_numpy(idx(DATA / "train-labels-idx1-ubyte").astype(np.int64))
    x = normalise(images)
    model = bayesian_lenet(1, 10)
    loss = ELBOLoss(model=model, inner_loss=nn.CrossEntropyLoss(), kl_weight=1 / 50000, num_samples=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    order = torch.randperm(len(labels))
    t0 = time.perf_counter()
    for start in range(0, min(len(labels), 128 * steps), 128):
        b = order[start : start + 128]
        opt.zero_grad()
        loss(x[b], labels[b]).backward()
        opt.step()
    seconds = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "bayesian_lenet.safetensors"
    st.save_model(model, str(path))
    probs = frozen_probs(model)
    test_labels = idx(DATA / "t10k-labels-idx1-ubyte")[:IMAGES]
    acc = float(np.mean(np.argmax(np.array(probs), axis=1) == test_labels))
    write_json(
        out_dir / "bayesian_lenet.json",
        path,
        probs,
        {"recipe": f"{min(steps, 469)} steps of 1 epoch (469), ELBOLoss(kl_weight=1/50000, num_samples=3), Adam 1e-3, batch 128, seed 0",
         "train_seconds": round(seconds, 1), "frozen_accuracy": acc},
    )
    print(f"{path}: trained in {seconds:.1f} s, frozen accuracy on {IMAGES} test images {acc:.4f}")


def load(file: Path, out: Path) -> None:
    model = bayesian_lenet(1, 10)
    missing, unexpected = st.load_model(model, str(file), strict=True)
    assert not missing and not unexpected, (missing, unexpected)
    write_json(out, file, frozen_probs(model), {"loaded_with": "safetensors.torch.load_model(strict=True)"})
    print(f"{file}: loaded strictly; frozen softmax of {IMAGES} images -> {out}")


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "train":
        train(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else 469)
    elif len(sys.argv) == 4 and sys.argv[1] == "load":
        load(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
