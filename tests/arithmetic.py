"""This machine's float arithmetic, as a key for results pinned bit for bit (imports nothing of
the package, so a capture script running older code can use it)."""

def arithmetic_key() -> str:
    """Which arithmetic this machine does: runs that build and train models here give bit-for-bit
    the same results only where float kernels agree (a different CPU's BLAS rounds differently), so
    the pin is kept per key (tests/data/capture_one_round_pin.py captures one)."""
    import hashlib

    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(64, 64, generator=generator)
    for _ in range(8):
        a = torch.tanh(a @ a / 8)
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, " \
           + hashlib.sha256(a.numpy().tobytes()).hexdigest()[:12]
