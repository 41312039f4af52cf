"""tadistill: distil a teacher LLM into a small student with a teaching assistant in the loop.

The Python API (the CLI's `tadistill run` is the same call):

    import tadistill
    config = tadistill.Config(method="none", budget={"requests": 200})   # or tadistill.load_config(path, ["k=v"])
    result = tadistill.run(config)
    result.accuracy, result.requests_paid, result.report
"""

from .version import __version__

__all__ = ["Config", "RunResult", "load_config", "run", "__version__"]


def __getattr__(name):
    # Lazy: `import tadistill` stays light (the CLI's --version, Ray workers importing a submodule).
    if name in ("Config", "load_config"):
        from . import config

        return getattr(config, name)
    if name in ("run", "RunResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'tadistill' has no attribute {name!r}")
