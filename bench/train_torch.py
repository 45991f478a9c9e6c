"""train_torch.py: the same model in PyTorch (1 thread), for bench/train.sh.

784 -> Linear(H) relu -> Linear(10), Glorot-uniform weights and zero biases (as Keras and
src/net.c), Adam(lr 0.001, eps 1e-7), cross-entropy, batch 64, a fresh shuffle each epoch.
Prints "key value" lines: epoch_seconds and epoch_cpu_seconds (process CPU time) per timed
run, epoch_best, epoch_cpu_best, rows_per_second, then one epoch written the tutorial way
(float dataset, DataLoader with shuffle: dataloader_epoch_seconds, dataloader_epoch_cpu_seconds),
and test_accuracy after EPOCHS epochs.

With scale > 1, the timed epochs run on the training rows repeated scale times (for epoch
rows/s at 600k and 1.2M rows); the DataLoader epoch is then skipped.

usage: /usr/bin/python3 train_torch.py DATADIR [epochs=5] [repeats=3] [hidden=128] [batch=64] [threads=1]
       [scale=1]
"""
import gzip
import os
import sys
import time

import numpy as np
import torch


def read_idx(directory, name):
    path = os.path.join(directory, name)
    opener = gzip.open if os.path.exists(path + ".gz") else open
    with opener(path + ".gz" if opener is gzip.open else path, "rb") as f:
        data = f.read()
    header = 16 if data[3] == 3 else 8
    return np.frombuffer(data, dtype=np.uint8, offset=header)


def make_model(hidden, seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, 10))
    for layer in (model[0], model[2]):
        torch.nn.init.xavier_uniform_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    return model


def train(model, x, y, epochs, batch):
    opt = torch.optim.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = x.shape[0]
    secs = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        c0 = time.process_time()
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb = x[idx].float().div_(255.0)
            opt.zero_grad()
            loss = loss_fn(model(xb), y[idx])
            loss.backward()
            opt.step()
        secs.append((time.perf_counter() - t0, time.process_time() - c0))
    return secs


def train_dataloader(model, x, y, batch):
    """One epoch the way the PyTorch tutorials write it: float tensors, DataLoader, shuffle."""
    opt = torch.optim.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x.float().div_(255.0), y), batch_size=batch, shuffle=True)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for xb, yb in loader:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    hidden = int(sys.argv[4]) if len(sys.argv) > 4 else 128
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 64
    torch.set_num_threads(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    scale = int(sys.argv[7]) if len(sys.argv) > 7 else 1

    # pixels kept as uint8 and converted per batch, as src/net.c does
    x = torch.from_numpy(read_idx(directory, "train-images-idx3-ubyte").reshape(-1, 784).copy())
    y = torch.from_numpy(read_idx(directory, "train-labels-idx1-ubyte").astype(np.int64))
    tx = torch.from_numpy(read_idx(directory, "t10k-images-idx3-ubyte").reshape(-1, 784).copy())
    ty = torch.from_numpy(read_idx(directory, "t10k-labels-idx1-ubyte").astype(np.int64))
    print("rows", x.shape[0])

    runs = []
    xs, ys = (x.repeat(scale, 1), y.repeat(scale)) if scale > 1 else (x, y)
    if scale > 1:
        print("scaled_rows", xs.shape[0])
    for _ in range(repeats):
        s, c = train(make_model(hidden, 0), xs, ys, 1, batch)[0]
        print("epoch_seconds %.4f\nepoch_cpu_seconds %.4f" % (s, c))
        runs.append((s, c))
    if runs:
        best = min(s for s, _ in runs)
        print("epoch_best %.4f" % best)
        print("epoch_cpu_best %.4f" % min(c for _, c in runs))
        print("rows_per_second %.0f" % (xs.shape[0] / best))
        if scale == 1:
            s, c = train_dataloader(make_model(hidden, 0), x, y, batch)
            print("dataloader_epoch_seconds %.4f\ndataloader_epoch_cpu_seconds %.4f" % (s, c))

    if epochs > 0:
        model = make_model(hidden, 0)
        train(model, x, y, epochs, batch)
        with torch.no_grad():
            pred = model(tx.float().div_(255.0)).argmax(1)
        print("test_accuracy %.4f" % (pred == ty).float().mean().item())


if __name__ == "__main__":
    main()
