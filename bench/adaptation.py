"""Adaptation quality: each method on the MedMNIST subsets, next to a scikit-learn reference.

    .venv/bin/python -m bench.adaptation [--datasets bloodmnist pneumoniamnist ...]
        [--methods zero_shot probe probe_none sklearn tip_adapter tip_adapter_f] [--epochs 10] [--official]

Every method row runs the real CLI, as a user would (`clipstudio zeroshot DATA --model builtin
--json`; `clipstudio train DATA --model builtin --method M ...` then `clipstudio eval RUN DATA
--json`), on `../shared/datasets/<name>/folders`: train on its train split (the app carves the
validation part from it with its default split settings), select on that validation part, report
on the test split. Metrics: accuracy, balanced accuracy and macro AUC (one-vs-rest; binary: the
AUC), each with its bootstrap 95% CI, and the wall time.

The `sklearn` row is the reference a reviewer would run: scikit-learn's `LogisticRegression`
(lbfgs) on the same frozen image embeddings of the same training images, C swept over the same
grid as the probe's penalty path (C = 1 / (strength x training images)), the best C chosen on the
same validation images by balanced accuracy, scored on the same test images by the same code.

`--official`: the official MedMNIST v2 splits of BloodMNIST (11,959 / 1,712 / 3,421), BreastMNIST
(546 / 78 / 156) and RetinaMNIST (1,080 / 120 / 400) instead, written as class folders
(`train/`, `val/`, `test/`) from the `.npz` files in `../shared/datasets` into the runs folder
(never into the repository): train on train, select on val, report on test. The markdown adds the
MedMNIST v2 paper's Table 3 beside them (`PAPER`).

Writes out/adaptation.json and out/adaptation.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import DATASETS, machine, out_dir

ALL_DATASETS = ("pneumoniamnist", "breastmnist", "retinamnist", "bloodmnist", "organamnist")
OFFICIAL = ("bloodmnist", "breastmnist", "retinamnist")  # the sets whose official .npz is kept
# MedMNIST v2 (Yang et al., Scientific Data 10:41, 2023), Table 3: test (AUC, ACC) of the paper's baselines.
PAPER = {
    "bloodmnist": {"ResNet-18 (28)": (0.998, 0.958), "ResNet-18 (224)": (0.998, 0.963),
                   "ResNet-50 (28)": (0.997, 0.956), "ResNet-50 (224)": (0.997, 0.950),
                   "auto-sklearn": (0.984, 0.878), "AutoKeras": (0.998, 0.961), "Google AutoML Vision": (0.998, 0.966)},
    "breastmnist": {"ResNet-18 (28)": (0.901, 0.863), "ResNet-18 (224)": (0.891, 0.833),
                    "ResNet-50 (28)": (0.857, 0.812), "ResNet-50 (224)": (0.866, 0.842),
                    "auto-sklearn": (0.836, 0.803), "AutoKeras": (0.871, 0.831), "Google AutoML Vision": (0.919, 0.861)},
    "retinamnist": {"ResNet-18 (28)": (0.717, 0.524), "ResNet-18 (224)": (0.710, 0.493),
                    "ResNet-50 (28)": (0.726, 0.528), "ResNet-50 (224)": (0.716, 0.511),
                    "auto-sklearn": (0.690, 0.515), "AutoKeras": (0.719, 0.503), "Google AutoML Vision": (0.750, 0.531)},
}
METHODS = ("zero_shot", "probe", "probe_text", "probe_none", "sklearn", "tip_adapter", "tip_adapter_f", "full", "auto")
SLOW = ("full", "auto")
LABELS = {
    "zero_shot": "zero-shot (prompts)",
    "probe": "linear probe (default: automatic prior)",
    "probe_text": "linear probe (prompt prior)",
    "probe_none": "linear probe (no prior)",
    "sklearn": "scikit-learn LogisticRegression (reference)",
    "tip_adapter": "Tip-Adapter (training-free)",
    "tip_adapter_f": "Tip-Adapter-F (20 epochs)",
    "full": "full fine-tuning (the app's defaults)",
    "auto": "Auto (the method it picks)",
}


def _cli(argv: list[str]) -> None:
    from clipstudio.cli.main import main

    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"clipstudio {shlex.join(argv)} exited {rc}")


def official_folders(name: str, root: Path) -> Path:
    """``root/<name>`` with ``train/``, ``val/``, ``test/`` class folders of the official split (written once)."""
    from PIL import Image

    target = root / name
    done = target / ".complete"
    if done.is_file():
        return target
    classes = json.loads((DATASETS / name / "classes.json").read_text(encoding="utf-8"))["classes"]
    arrays = np.load(DATASETS / name / f"{name}.npz")
    for split in ("train", "val", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1)
        for c in classes:
            (target / split / c).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            Image.fromarray(image).save(target / split / classes[int(label)] / f"{split}_{i}.png")
    done.write_text("", encoding="utf-8")
    return target


def data_folder(name: str, official_root: Path | None) -> Path:
    return DATASETS / name / "folders" if official_root is None else official_folders(name, official_root)


def _command(argv: list[str], name: str, data: Path, runs: Path) -> str:
    """The command as the doc shows it: this machine's folders become OFFICIAL/<name> (the official
    split's class folders), ../shared/datasets/<name>/folders (a subset) and RUNS (the run folders)."""
    shown = "OFFICIAL/" + name if data.parent.name == "official" else f"../shared/datasets/{name}/folders"

    def placeholder(arg: str) -> str:
        arg = arg.replace(str(data), shown)
        return arg.replace(str(runs), "RUNS")

    return shlex.join(["clipstudio", *(placeholder(a) for a in argv)])


def _row(name: str, method: str, scored: dict, seconds: float, command: str) -> dict:
    auc = scored["auc"]["macro"]
    return {
        "dataset": name, "method": method, "n_test": scored["n"], "seconds": round(seconds, 1),
        "accuracy": scored["accuracy"], "accuracy_ci": scored["ci95"]["accuracy"],
        "balanced_accuracy": scored["balanced_accuracy"], "balanced_accuracy_ci": scored["ci95"]["balanced_accuracy"],
        "auc": auc["value"], "auc_ci": auc["ci95"], "command": command,
    }


def zero_shot(name: str, data: Path, runs: Path, epochs: int) -> dict:
    out = runs / f"{name}-zero_shot.json"
    argv = ["zeroshot", str(data), "--model", "builtin", "--json", str(out)]
    started = time.perf_counter()
    _cli(argv)
    return _row(name, "zero_shot", json.loads(out.read_text(encoding="utf-8")), time.perf_counter() - started,
                _command(argv, name, data, runs))


def _trained(name: str, data: Path, runs: Path, method: str, extra: list[str], label: str, epochs: int) -> dict:
    run = runs / f"{name}-{label}"
    train = ["train", str(data), "--model", "builtin", "--method", method, "--epochs", str(epochs),
             "--output", str(run), *extra]
    started = time.perf_counter()
    _cli(train)
    seconds = time.perf_counter() - started
    out = runs / f"{run.name}.json"
    _cli(["eval", str(run), str(data), "--json", str(out)])
    after = json.loads(out.read_text(encoding="utf-8"))["after"]  # the trained model, on the test split
    return _row(name, label, after, seconds, _command(train, name, data, runs))


def probe(name: str, data: Path, runs: Path, epochs: int) -> dict:
    return _trained(name, data, runs, "linear_probe", [], "probe", epochs)


def probe_text(name: str, data: Path, runs: Path, epochs: int) -> dict:
    return _trained(name, data, runs, "linear_probe", ["--probe-prior", "text"], "probe_text", epochs)


def probe_none(name: str, data: Path, runs: Path, epochs: int) -> dict:
    return _trained(name, data, runs, "linear_probe", ["--probe-prior", "none"], "probe_none", epochs)


def sklearn(name: str, data: Path, runs: Path, epochs: int) -> dict:
    """LogisticRegression over the probe's grid, on the probe run's own training and validation images."""
    from sklearn.linear_model import LogisticRegression

    from clipstudio.engine.cache.vectors import EmbeddingCache
    from clipstudio.engine.config import DataConfig
    from clipstudio.engine.data.readers import load_dataset
    from clipstudio.engine.embeddings import encode_image_files, l2_normalise
    from clipstudio.engine.evaluation.roc import roc_analysis
    from clipstudio.engine.evaluation.split_policy import report_part
    from clipstudio.engine.evaluation.zero_shot import score_embeddings
    from clipstudio.engine.models import load_model
    from clipstudio.engine.training.methods.linear_probe import path_strengths

    run = runs / f"{name}-probe"
    if not run.is_dir():
        probe(name, data, runs, epochs)  # the splits and the cached embeddings come from the probe run
    dataset = load_dataset(data)
    index = {str(s.path): i for i, s in enumerate(dataset.samples)}
    splits = json.loads((run / "splits.json").read_text(encoding="utf-8"))
    test = report_part(dataset, DataConfig()).dataset
    model = load_model("builtin", device="cpu")
    cache = EmbeddingCache()

    def features(paths: list) -> tuple[np.ndarray, np.ndarray]:
        encoded = encode_image_files(model, paths, cache=cache, batch_size=64)
        labels = [dataset.samples[index[str(paths[i])]].label for i in encoded.indices]
        return l2_normalise(encoded.embeddings), np.array(labels)

    x_train, y_train = features([Path(p) for p in splits["train"]])
    x_val, y_val = features([Path(p) for p in splits["val"]])
    x_test, y_test = features(test.paths)
    def head(fitted: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
        """(rows, bias) per class; a binary fit has one row, the logit of class 1 against class 0."""
        if len(fitted.coef_) == 1:
            return np.vstack([np.zeros_like(fitted.coef_), fitted.coef_]), np.r_[0.0, fitted.intercept_]
        return fitted.coef_, fitted.intercept_

    started = time.perf_counter()
    best, best_score = None, -1.0
    for strength in path_strengths(epochs):
        c = 1.0 / (strength * len(y_train))
        fitted = LogisticRegression(C=c, max_iter=5000).fit(x_train, y_train)
        rows, bias = head(fitted)
        score = score_embeddings(x_val, y_val, rows, dataset.class_names, logit_scale=1.0,
                                 class_bias=bias, n_bootstrap=0, with_predictions=False)
        if score.balanced_accuracy > best_score:
            best, best_score = fitted, score.balanced_accuracy
    seconds = time.perf_counter() - started
    rows, bias = head(best)
    scored = score_embeddings(x_test, y_test, rows, dataset.class_names, logit_scale=1.0,
                              class_bias=bias, with_predictions=False, with_logits=True)
    logits = scored.logits.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    auc = roc_analysis(y_test, probs, dataset.class_names).macro_auc
    result = scored.to_dict() | {"auc": {"macro": auc.to_dict()}}
    return _row(name, "sklearn", result, seconds, f"LogisticRegression(C=1/(strength*{len(y_train)})), "
                f"C chosen on validation: {1.0 / best.C / len(y_train):.1e}")


def tip_adapter(name: str, data: Path, runs: Path, epochs: int) -> dict:
    return _trained(name, data, runs, "tip_adapter", [], "tip_adapter", 1)  # training-free: one epoch


def tip_adapter_f(name: str, data: Path, runs: Path, epochs: int) -> dict:
    return _trained(name, data, runs, "tip_adapter_f", [], "tip_adapter_f", 20)  # the paper's 20 epochs


def full(name: str, data: Path, runs: Path, epochs: int) -> dict:
    # The app's defaults: 10 epochs, 112 px on a CPU, the built-in model's full fine-tuning rate (1e-4).
    return _trained(name, data, runs, "full", [], "full", 10)


def auto(name: str, data: Path, runs: Path, epochs: int) -> dict:
    return _trained(name, data, runs, "auto", [], "auto", epochs)


RUNNERS = {"zero_shot": zero_shot, "probe": probe, "probe_text": probe_text, "probe_none": probe_none, "sklearn": sklearn,
           "tip_adapter": tip_adapter, "tip_adapter_f": tip_adapter_f, "full": full, "auto": auto}


def _ci(row: dict, key: str) -> str:
    value, ci = row[key], row[f"{key}_ci"]
    return f"{value:.3f}" if not ci else f"{value:.3f} ({ci[0]:.3f}–{ci[1]:.3f})"


def markdown(rows: list[dict], official: bool = False) -> str:
    head = ("| dataset | method | test images | accuracy (95% CI) | balanced accuracy (95% CI) | macro AUC (95% CI) "
            "| train s |\n|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['dataset']} | {LABELS[r['method']]} | {r['n_test']} | {_ci(r, 'accuracy')} | "
        f"{_ci(r, 'balanced_accuracy')} | {_ci(r, 'auc')} | {r['seconds']} |\n" for r in rows
    )
    text = f"Machine: {machine()}\n\n" + head + body
    if official:
        text += "\nMedMNIST v2 paper, Table 3 (test AUC / ACC):\n\n| dataset | model | AUC | ACC |\n|---|---|---|---|\n"
        names = dict.fromkeys(r["dataset"] for r in rows)
        text += "".join(f"| {n} | {model} | {auc:.3f} | {acc:.3f} |\n"
                        for n in names for model, (auc, acc) in PAPER.get(n, {}).items())
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(ALL_DATASETS), choices=ALL_DATASETS)
    parser.add_argument("--methods", nargs="+", default=[m for m in METHODS if m not in SLOW], choices=METHODS,
                        help=f"default: all but {' and '.join(SLOW)}, which train for minutes per dataset on a CPU")
    parser.add_argument("--epochs", type=int, default=10, help="the probe's penalty path: strengths tried")
    parser.add_argument("--runs", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--official", action="store_true",
                        help=f"the official MedMNIST v2 splits ({', '.join(OFFICIAL)}) instead of the subsets")
    args = parser.parse_args(argv)
    datasets = [n for n in args.datasets if n in OFFICIAL] if args.official else args.datasets
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or Path(tmp)
        runs.mkdir(parents=True, exist_ok=True)
        for name in datasets:
            data = data_folder(name, runs / "official" if args.official else None)
            for method in args.methods:
                row = RUNNERS[method](name, data, runs, args.epochs) | {"split": "official" if args.official else "subset"}
                print(json.dumps(row), flush=True)
                rows.append(row)
    name = "adaptation_official" if args.official else "adaptation"
    folder = out_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    (folder / f"{name}.md").write_text(markdown(rows, args.official), encoding="utf-8")
    print(markdown(rows, args.official))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
