"""Train the frame CNN that ships in cnnlstm_edu/weights/mnist_frame_cnn.safetensors.

The CNN-LSTM's default frame CNN (two conv blocks, 16 and 32 channels) plus a linear layer,
trained on the 60,000 single 28x28 digits of the bundled MNIST with ``cnnlstm_edu.train.fit``
(AdamW, one-cycle learning rate), tested on the 10,000 test digits. It prints the provenance
lines that weights/README.md records.

    python scripts/train_frame_encoder.py [--epochs 2] [--out cnnlstm_edu/weights/mnist_frame_cnn.safetensors]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import torch

from cnnlstm_edu.atomic import atomic_path
from cnnlstm_edu.data import load_mnist
from cnnlstm_edu.models.pretrained import DigitClassifier
from cnnlstm_edu.train import evaluate, fit

OUT = Path(__file__).resolve().parent.parent / "cnnlstm_edu" / "weights" / "mnist_frame_cnn.safetensors"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    train_x, train_y = load_mnist("train")
    test_x, test_y = load_mnist("test")
    model = DigitClassifier()
    start = time.perf_counter()
    # fit takes (N, T, ...) sequences; a single image with its channel axis, (N, 1, 28, 28), is
    # what the classifier reads, and fit passes x to the model as it is.
    for event in fit(model, (train_x[:, None], train_y), None, epochs=args.epochs, batch_size=128,
                     lr=4e-3, device="cpu", seed=args.seed, log_every=100):
        if event.kind == "step":
            print(f"step {event.step} epoch {event.epoch:.2f} loss {event.loss:.3f}", flush=True)
    seconds = time.perf_counter() - start
    loss, acc = evaluate(model, test_x[:, None].float() / 255, test_y)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    info = {
        "command": "python scripts/train_frame_encoder.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__, "python": platform.python_version(),
        "data": "bundled MNIST (cnnlstm_edu/data/mnist.npz): 60,000 train digits, 10,000 test digits",
        "epochs": str(args.epochs), "seed": str(args.seed), "train_seconds": f"{seconds:.0f}",
        "test_accuracy": f"{acc:.4f}", "test_loss": f"{loss:.4f}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        save_file(state, tmp, metadata=info)
    for key, value in info.items():
        print(f"{key}: {value}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
