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


def weights_fingerprint(model: str) -> str:
    """Which weights a run read: a hash of a local model folder's weight files, or the name itself
    for a model that is not a local folder (a hub name). A model's cache key says how it was meant
    to be built, not what a record was computed with: the grid of issue 38 read TAs built with 2
    threads in some sessions and 1 in others under one key, which only the weights tell apart."""
    import hashlib
    from pathlib import Path

    folder = Path(model)
    files = sorted(p for p in folder.glob("*") if p.suffix in {".safetensors", ".bin"}) if folder.is_dir() else []
    if not files:
        return model
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]
