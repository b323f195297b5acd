"""A vendor's model package as the sandbox tests see it: honest models and hostile ones.

Only modules the sandbox worker has already imported (os, socket, sys, json, time, numpy) are
used, so the package also loads where the worker cannot read the standard library after it
drops to an unprivileged user.
"""

import json
import os
import socket
import sys
import time

import numpy as np


class Linear:
    """An honest linear classifier over 8 features, 3 classes."""

    input_shape = (8,)
    num_classes = 3

    def __init__(self, seed=0):
        self.w = np.sin(np.arange(24, dtype=np.float32) + seed).reshape(8, 3)
        self.b = np.cos(np.arange(3, dtype=np.float32) * (seed + 1))

    def __call__(self, x):
        return x @ self.w + self.b


def linear(seed=0):
    return Linear(seed)


def connect(port):
    """Phone home to 127.0.0.1:port while loading."""
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    return Linear()


def listen(port):
    """Open a listening TCP socket on every interface and keep it open while serving."""
    model = Linear()
    model.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    model.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    model.server.bind(("0.0.0.0", port))
    model.server.listen(1)
    return model


def write(paths):
    """Try to leave a file behind at each of ``paths`` while loading; fail with every reason if none worked."""
    reasons = []
    for path in paths:
        try:
            with open(path, "w") as f:
                f.write("the vendor was here")
        except OSError as e:
            reasons.append(f"{path}: {e.strerror}")
    if len(reasons) == len(paths):
        raise PermissionError("; ".join(reasons))
    return Linear()


def read(path):
    """Read a file the user did not hand over; serve only if it could not."""
    with open(path) as f:
        raise RuntimeError(f"read someone else's file: {f.read()!r}")


def scratch_roundtrip(seed=0):
    """Keep state in the scratch folder ($TMPDIR), read it back, and serve from it."""
    folder = os.environ["TMPDIR"]
    if os.environ["HOME"] != folder:
        raise RuntimeError("HOME is not the scratch folder")
    model = Linear(seed)
    path = os.path.join(folder, "weights.npy")
    np.save(path, model.w)
    model.w = np.load(path)
    return model


class Behaviour(Linear):
    """A model whose __call__ misbehaves in one named way."""

    def __init__(self, how):
        super().__init__()
        self.how = how

    def __call__(self, x):
        how = self.how
        if how == "sleep":
            time.sleep(3600)
        if how == "spin":
            while True:
                pass
        if how == "hog":
            return np.ones((1 << 30,), dtype=np.float64)  # 8 GiB
        if how == "exit":
            os._exit(7)
        if how == "nan":
            return np.full((len(x), 3), np.nan, dtype=np.float32)
        if how == "shape":
            return np.zeros((len(x), 5), dtype=np.float32)
        if how == "strings":
            return np.array([["a", "b", "c"]] * len(x))
        if how == "terminal":
            raise ValueError("\x1b[2J\x1b[31mfake prompt\r\nsecond line")
        if how == "flaky" and len(x) == 1:
            raise ValueError("vendor bug on single samples")
        if how == "forge":
            reply_fd = json.loads(sys.argv[1])["reply_fd"]
            os.write(reply_fd, b"MSB1" + (1 << 40).to_bytes(8, "big"))
            time.sleep(3600)
        return super().__call__(x)


def behaving(how):
    return Behaviour(how)


def slow_load():
    time.sleep(3600)


def torch_mlp(seed=0):
    """A small torch network, seeded so the test can rebuild it in-process."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
