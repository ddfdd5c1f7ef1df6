import os
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, settings

# "default" (CI, the README's command) draws the same examples every run: a failure there is
# reproducible and the suite's strength does not vary; "thorough" explores with fresh draws
settings.register_profile(
    "default",
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def torch() -> Iterator[Any]:
    """PyTorch on one thread: its tiny ops are 10x slower when threads contend."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)
