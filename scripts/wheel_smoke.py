"""Build mmlab's wheel and check that it works outside the checkout (`make wheel-smoke`, CI).

    python scripts/wheel_smoke.py [--keep]

1. Builds the wheel from this checkout (`pip wheel --no-deps --no-build-isolation --no-index`:
   no network; setuptools comes from the running environment) and checks its contents: the data
   the loaders read (every file of `data/manifest.json` and `data/fsdd/manifest.json`), FSDD's
   licence and attribution, no build scripts, at most 30 MB.
2. Creates a fresh virtual environment in a temporary directory outside the checkout and
   installs the wheel there with `--no-deps`. The dependencies (torch, plotly, ...) are not
   downloaded: a `.pth` file appends this environment's site-packages to the fresh one's
   `sys.path`, after its own. That directory's `.pth` files are not processed, so an editable
   mmlab installed there stays invisible; the check asserts that `mmlab` is imported from the
   fresh environment. What this tests is mmlab's package (its modules and data), not the
   resolution of its dependencies from PyPI.
3. Runs the smoke test (`--inside`) with the fresh interpreter in isolated mode (`-I`: no
   PYTHONPATH, no user site, no script directory on sys.path), with a temporary working
   directory and without $MMLAB_DATA: checks every shipped file's sha256, loads each registered
   dataset and the example folder, trains one step with `mmlab.train.fit` and draws one plotly
   figure; checks that $MMLAB_DATA still overrides the packaged data.
4. Repeats 2-3 with a non-editable `pip install .` from the checkout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 30 * 2**20
# offline; --ignore-installed: never look at (or try to uninstall) the mmlab of the environment
# whose site-packages the fresh venv borrows
INSTALL = ("--no-deps", "--no-index", "--ignore-installed")


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def _pip(*args: str | Path) -> list:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]


def build_wheel(out: Path) -> Path:
    """Build the wheel into `out`; setuptools' build/lib is removed first (no stale files)."""
    for stale in [ROOT / "build" / "lib", *(ROOT / "build").glob("bdist.*")]:
        shutil.rmtree(stale, ignore_errors=True)
    _run(_pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, ROOT))
    (wheel,) = out.glob("mmlab-*.whl")
    return wheel


def check_wheel(wheel: Path) -> None:
    """The wheel carries what the loaders read, the licences, and no data build scripts."""
    sys.path.insert(0, str(ROOT))  # setup.py's list of shipped files
    from setup import shipped_files

    names = set(zipfile.ZipFile(wheel).namelist())
    want = {f"mmlab/_data/{f}" for f in shipped_files()}
    missing = sorted(want - names)
    assert not missing, f"{wheel.name} lacks {len(missing)} data files, e.g. {missing[:3]}"
    assert not [n for n in names if n.startswith("mmlab/_data/") and n.endswith(".py")]
    assert "mmlab/_data/fsdd/LICENSE.md" in names and "mmlab/_data/README.md" in names
    assert any(n.endswith(".dist-info/licenses/data/fsdd/LICENSE.md") for n in names)
    size = wheel.stat().st_size
    assert size <= LIMIT_BYTES, f"{wheel.name} is {size / 2**20:.1f} MB (limit 30 MB)"
    print(f"wheel-smoke: {wheel.name}: {size / 2**20:.1f} MB, {len(want)} data files", flush=True)


def fresh_venv(path: Path) -> Path:
    """A venv without pip whose sys.path ends with this environment's site-packages."""
    _run([sys.executable, "-m", "venv", "--without-pip", path])
    python = path / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(site, "_mmlab_smoke_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    return python


def smoke(python: Path, work: Path, label: str) -> None:
    """Run `--inside` with the fresh interpreter, isolated, from `work`."""
    work.mkdir(parents=True, exist_ok=True)
    script = work / "mmlab_wheel_smoke.py"
    shutil.copy(__file__, script)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "MMLAB_DATA"}}
    env.update(MMLAB_TINY="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    t0 = time.monotonic()
    _run([python, "-I", script, "--inside"], cwd=work, env=env)
    print(f"wheel-smoke: {label}: passed in {time.monotonic() - t0:.0f} s", flush=True)


def inside() -> None:
    """The smoke test proper, run by the fresh environment's interpreter."""
    import plotly.graph_objects as go
    import torch

    import mmlab
    from mmlab.data import DataFileError, data_root, read_manifest, verified_path

    here = Path(mmlab.__file__).resolve()
    assert Path(sys.prefix).resolve() in here.parents, f"mmlab imported from {here}"
    assert "MMLAB_DATA" not in os.environ
    root = data_root()
    assert root == here.parent / "_data", root
    assert mmlab.data.DATA_ROOT == root
    n_files = 0
    for sub in (root, root / "fsdd"):  # every shipped file is there, with its sha256
        for rel in read_manifest(sub).get("files", {}):
            verified_path(rel, sub)
            n_files += 1
    print(f"  mmlab from {here.parent}; {n_files} data files verified in {root}")

    for name in mmlab.data.available():
        for split in ("train", "test"):
            ds = mmlab.data.load(name, split=split, n=16)
            b = ds.batch(torch.arange(4))
            shapes = {k: tuple(v.shape) if hasattr(v, "shape") else len(v) for k, v in b.items()
                      if k in ds.modalities_data}
            assert len(ds) == 16 and all(v for v in shapes.values()), (name, shapes)
            print(f"  load({name!r}, split={split!r}, n=16): batch {shapes}")
    own = mmlab.data.from_folder(root / "examples" / "my_pairs")
    print(f"  from_folder(examples/my_pairs): {len(own)} pairs")

    from mmlab.encoders import AudioConvEncoder, ConvEncoder, ProjectionHead
    from mmlab.losses import ClipLoss
    from mmlab.model import ContrastiveModel
    from mmlab.train import fit

    mmlab.seed_everything(0)
    model = ContrastiveModel(
        encoders={"image": ConvEncoder(out_dim=32), "audio": AudioConvEncoder(out_dim=32)},
        heads={"image": ProjectionHead(32, 16), "audio": ProjectionHead(32, 16)},
        loss=ClipLoss(init_temperature=0.07))
    train = mmlab.data.load("digits", split="train", n=32)
    history = fit(model, train, steps=1, batch_size=8, lr=1e-3)
    assert len(history.loss) == 1 and torch.isfinite(torch.tensor(history.loss)).all()
    fig = mmlab.viz.training_curves(history)
    assert isinstance(fig, go.Figure) and fig.data, fig
    html = mmlab.viz.figure_html(fig)  # plotly.js inlined from the installed plotly
    print(f"  fit(steps=1): loss {history.loss[0]:.3f}; training_curves: {len(fig.data)} traces, "
          f"{len(html) // 1024} KiB of offline HTML")

    with tempfile.TemporaryDirectory() as elsewhere:  # $MMLAB_DATA still wins
        os.environ["MMLAB_DATA"] = elsewhere
        assert data_root() == Path(elsewhere)
        try:
            mmlab.data.load("digits", split="test", n=4)
        except DataFileError as err:
            assert elsewhere in str(err), err
        else:
            raise AssertionError("load() ignored $MMLAB_DATA")
        del os.environ["MMLAB_DATA"]
    print("  $MMLAB_DATA overrides the packaged data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.inside:
        inside()
        return
    tmp = Path(tempfile.mkdtemp(prefix="mmlab-wheel-smoke-"))
    assert ROOT not in tmp.parents
    try:
        wheel = build_wheel(tmp / "dist")
        check_wheel(wheel)
        python = fresh_venv(tmp / "venv")
        _run(_pip("--python", python, "install", *INSTALL, wheel))
        smoke(python, tmp / "work", "the wheel in a fresh venv")
        python = fresh_venv(tmp / "venv2")
        _run(_pip("--python", python, "install", *INSTALL, "--no-build-isolation", ROOT))
        smoke(python, tmp / "work2", "`pip install .` (not editable) in a fresh venv")
    finally:
        if args.keep:
            print(f"wheel-smoke: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
