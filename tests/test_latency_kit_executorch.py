"""ExecuTorch latency kits, fp32 and INT8, timed by their runner on a stand-in device where attentivenas
does not import (ExecuTorch's Python runtime imports torch, so torch does there) and imported
(`latency import`) into tables that load and predict; a `.pte` that no longer matches its sha256 is
refused in one line by the runner and by the import, and a device without executorch is told what
to install. The kits are of a one-stage space of one arch (8 op signatures; its calibration,
held-out and reference subnets are one program, exported once): ExecuTorch exports take about a
second each."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest

from attentivenas.config import LatencyTableConfig
from attentivenas.latency import LatencyTable
from attentivenas.latency.kit import MANIFEST, write_kit
from attentivenas.latency.table import check_table_precision
from tests.cli_helpers import run_cli
from tests.synthetic import MICRO_SPACE

from .test_latency_kit import _stand_in
from .test_runtimes import needs_executorch

pytestmark = needs_executorch

#: the micro space's first stage only: 8 op signatures, one arch
NANO_SPACE = replace(MICRO_SPACE, name="nano", stages=MICRO_SPACE.stages[:1])
#: an ExecuTorch kit's runner may import torch (ExecuTorch's Python runtime needs it), never attentivenas
BLOCK = ("attentivenas",)


@pytest.fixture(scope="module", params=["fp32", "int8"])
def et_kit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """An ExecuTorch kit of the nano space at a precision, and the timings its runner wrote on the stand-in."""
    precision = request.param
    root = tmp_path_factory.mktemp(f"et_kit_{precision}")
    config = LatencyTableConfig(runtime="executorch", precision=precision, calibration_archs=2, holdout_archs=2,
                                warmup=1, repeats=3, passes=2, num_classes=10)
    write_kit(NANO_SPACE, config, root / "kit", progress=False)
    res = _stand_in(root, root / "kit" / "runner.py", "--out", str(root / "timings.json"), block=BLOCK)
    assert res.returncode == 0, res.stderr
    return root / "kit", root / "timings.json", precision


def test_executorch_kit_runs_on_the_stand_in_and_imports_into_a_table(et_kit: tuple[Path, Path, str],
                                                                       tmp_path: Path) -> None:
    folder, timings, precision = et_kit
    man = json.loads((folder / MANIFEST).read_text())
    t = json.loads(timings.read_text())
    assert {it["file"].rsplit(".", 1)[1] for it in man["items"]} == {"pte"} and man["precision"] == precision
    assert t["runtime"] == "executorch" and t["runtime_version"] == metadata.version("executorch")
    assert t["threads"] == 1 and t["kit_id"] == man["kit_id"] and t["precision"] == precision
    assert len(t["times"]) == len(man["items"]) - 1 and all(len(v) == 2 for v in t["times"].values())
    readme = (folder / "README.md").read_text()
    assert "pip install executorch" in readme and "executor_runner" in readme and "minibench" in readme
    out = tmp_path / "table.json"
    r = run_cli("latency", "import", str(folder), str(timings), "--out", str(out), "--device-name", "stand-in")
    assert r.code == 0, r.err
    assert "held-out subnets" in r.out
    tab = LatencyTable.load(out)
    assert tab.runtime == "executorch" and tab.precision == precision and tab.device_name == "stand-in"
    assert tab.meta["kit_id"] == man["kit_id"] and tab.meta["holdout_archs"] == 2 and tab.call_ms > 0
    assert len(tab.entries) == sum(it["measures"] == "op" for it in man["items"]) == 8
    assert not tab.missing_ops(NANO_SPACE, 10) and tab.predict(NANO_SPACE, NANO_SPACE.min_arch()) > 0
    check_table_precision(tab, precision)


def test_the_runner_names_a_missing_executorch(et_kit: tuple[Path, Path, str], tmp_path: Path) -> None:
    res = _stand_in(tmp_path, et_kit[0] / "runner.py", "--out", str(tmp_path / "t.json"),
                    block=("attentivenas", "executorch"))
    assert res.returncode == 2 and not (tmp_path / "t.json").exists()
    assert res.stderr.strip() == ("runner: this kit needs the executorch package (pip install executorch); importing "
                                  "it failed: stand-in device: executorch is not installed")


def test_an_edited_pte_is_refused_by_the_runner_and_the_import(et_kit: tuple[Path, Path, str],
                                                                 tmp_path: Path) -> None:
    folder = Path(shutil.copytree(et_kit[0], tmp_path / "kit"))
    man = json.loads((folder / MANIFEST).read_text())
    pte = folder / man["items"][-2]["file"]  # a held-out subnet
    data = bytearray(pte.read_bytes())
    data[len(data) // 2] ^= 1  # one bit flipped: same size, another sha256
    pte.write_bytes(bytes(data))
    res = _stand_in(tmp_path, folder / "runner.py", "--out", str(tmp_path / "t.json"), block=BLOCK)
    assert res.returncode == 2 and not (tmp_path / "t.json").exists()
    assert res.stderr.strip() == f"runner: {man['items'][-2]['file']} does not match its sha256 in manifest.json; " \
                                 "copy the kit again"
    out = tmp_path / "table.json"
    r = run_cli("latency", "import", str(folder), str(et_kit[1]), "--out", str(out))
    assert r.code == 2 and "does not match its sha256" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not out.exists()
