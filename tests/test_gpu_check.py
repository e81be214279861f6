"""``python -m benchmarks --gpu`` on a machine without CUDA: one line, nothing run, exit 0."""
from __future__ import annotations

import pytest
import torch

from benchmarks.__main__ import main
from benchmarks.gpu_check import SKIP_LINE


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the check itself")
def test_the_gpu_check_is_skipped_with_one_line_without_cuda(capsys, tmp_path):
    assert main(["--gpu", "--json-out", str(tmp_path / "results.json")]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == SKIP_LINE and not out.err
    assert not list(tmp_path.iterdir())
