"""One registry helper for every kind of variant the config chooses from."""

import pytest

from tadistill.registry import Registry, summaries


def test_a_variant_is_registered_once_and_found_by_its_name():
    launchers = Registry("inference launcher", key="launcher")

    @launchers.register
    class Local:
        launcher, summary = "local", "in this process"

    assert launchers.named("local", "inference.launcher") is Local
    assert summaries(launchers) == "'local': in this process"
    with pytest.raises(ValueError, match="inference launcher 'local' is registered twice"):
        launchers.register(Local)
    with pytest.raises(ValueError, match="unknown inference.launcher 'gpu'; one of local"):
        launchers.named("gpu", "inference.launcher")
