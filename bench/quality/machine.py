"""This machine's float arithmetic, as a key: runs that build and train models give bit-for-bit the
same results only on machines whose float kernels agree, so a benchmark record and a test pin
say which arithmetic made them, and only runs of one arithmetic are paired. Imports nothing of
the package, so a capture script running older code can use it."""


def arithmetic_key() -> str:
    """Which arithmetic this process does (torch version, threads, and a hash of a fixed chain of
    matrix products: a different CPU's BLAS rounds differently)."""
    import hashlib

    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(64, 64, generator=generator)
    for _ in range(8):
        a = torch.tanh(a @ a / 8)
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, " \
           + hashlib.sha256(a.numpy().tobytes()).hexdigest()[:12]
