"""Arrow's pool and the page hand-back of geo.memory: choices of speed that change no result."""

from __future__ import annotations

import pyarrow as pa
import pytest

from buque.geo.memory import release, use_system_pool


@pytest.fixture
def restore_pool():
    before = pa.default_memory_pool()
    yield
    pa.set_memory_pool(before)


def test_system_pool_unless_the_environment_chose(monkeypatch, restore_pool):
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    use_system_pool()
    assert pa.default_memory_pool().backend_name == "system"
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    use_system_pool()
    assert pa.default_memory_pool().backend_name == "mimalloc"


def test_run_uses_the_system_pool(synth, tmp_path, monkeypatch, restore_pool):
    from buque.geo.run import run_project

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    run_project(synth.project, tmp_path / "run")
    assert pa.default_memory_pool().backend_name == "system"
    release()  # and handing pages back works with it
