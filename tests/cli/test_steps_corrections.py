"""Every command that reads a dataset says how many of the user's corrections it applied."""

from __future__ import annotations

import json

from clipstudio.engine.data import load_dataset
from clipstudio.engine.data.corrections import EXCLUDE, RELABEL, Correction, add_corrections, corrections_file


def test_inspect_reports_corrections_applied_and_counts_the_corrected_dataset(cli, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"normal": 4, "pneumonia": 2})
    paths = [str(p) for p in load_dataset(data).paths]
    add_corrections(data, [Correction(paths[0], EXCLUDE), Correction(paths[1], RELABEL, "pneumonia")])

    code, out, err = cli("inspect", str(data), "--json", "-")

    assert code == 0
    assert json.loads(out)["classes"] == {"normal": 2, "pneumonia": 3}
    assert "2 corrections applied" in err


def test_bad_corrections_file_is_a_warning_not_a_failure(cli, tmp_path, make_class_folders):
    data = make_class_folders(tmp_path / "data", {"normal": 2, "pneumonia": 2})
    target = corrections_file(data)
    target.parent.mkdir(parents=True)
    target.write_text("not,a corrections\nfile\n", encoding="utf-8")

    code, out, err = cli("inspect", str(data), "--json", "-")

    assert code == 0
    assert json.loads(out)["n_images"] == 4
    assert "warning" in err and str(target) in err
