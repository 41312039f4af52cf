"""The quality scripts' shared --threads option: it sets this process's torch threads, and
leaves torch's default alone when not given (conftest's torch_threads_restored puts the count back)."""

import argparse

import torch

from bench.quality.bench import add_threads_option, use_threads


def test_threads_named_on_the_command_line_are_this_process_s_torch_threads():
    parser = argparse.ArgumentParser()
    add_threads_option(parser)
    before = torch.get_num_threads()
    use_threads(parser.parse_args([]).threads)
    assert torch.get_num_threads() == before
    use_threads(parser.parse_args(["--threads", "1"]).threads)
    assert torch.get_num_threads() == 1
