"""Freed host memory kept for reuse (glibc malloc settings): when it applies, and that it works."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attentivenas import host_memory
from attentivenas.config import TrainConfig
from attentivenas.errors import ConfigError

glibc_only = pytest.mark.skipif(not host_memory.supported(), reason="needs glibc (Linux)")

# Three "steps" that each allocate 240 MiB of tensors alive together, then free them (after one
# warm-up step); prints the minor page faults of the three.
FAULTS = """
import resource, sys, torch
from attentivenas.host_memory import reuse_freed_memory
reuse_freed_memory(sys.argv[1] == "1")
def step():
    xs = [torch.ones(mib << 18) for mib in (64, 48, 96, 32)]
    del xs
step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def test_auto_means_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(host_memory.ENV_VAR, raising=False)
    assert host_memory.wanted("auto", "cpu")
    assert not host_memory.wanted("auto", "cuda")
    assert host_memory.wanted(True, "cuda") and not host_memory.wanted(False, "cpu")


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("off", False), ("1", True), ("TRUE", True)])
def test_environment_overrides_auto(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv(host_memory.ENV_VAR, value)
    assert host_memory.wanted("auto", "cpu") is expected
    assert host_memory.wanted("auto", "cuda") is expected
    assert host_memory.wanted(False, "cpu") is False  # an explicit setting wins


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(host_memory.ENV_VAR, "maybe")
    with pytest.raises(ConfigError, match=host_memory.ENV_VAR):
        host_memory.wanted("auto", "cpu")


def test_true_without_glibc_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_memory, "_in_effect", False)
    monkeypatch.setattr(host_memory, "supported", lambda: False)
    with pytest.raises(ConfigError, match="runtime.reuse_freed_memory=true needs glibc"):
        host_memory.reuse_freed_memory(True, "cpu", "runtime.reuse_freed_memory")
    assert host_memory.reuse_freed_memory("auto", "cpu") is False  # auto: silently nothing


def test_config_field() -> None:
    assert TrainConfig().runtime.reuse_freed_memory == "auto"
    assert TrainConfig.model_validate({"runtime": {"reuse_freed_memory": False}}).runtime.reuse_freed_memory is False
    with pytest.raises(ValueError, match="reuse_freed_memory"):
        TrainConfig.model_validate({"runtime": {"reuse_freed_memory": "sometimes"}})


@glibc_only
def test_large_blocks_are_reused_instead_of_faulted_in_again() -> None:
    def faults(setting: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS, setting], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1])

    fresh, reused = faults("0"), faults("1")
    pages = 3 * (240 << 20) // 4096
    assert fresh > pages * 0.9, fresh  # glibc maps each block afresh: every page faults in again
    # the heap's pages serve the next steps (glibc 2.36's posix_memalign still misses some holes)
    assert reused < fresh / 4, (reused, fresh)
