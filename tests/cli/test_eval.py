"""`clipstudio eval RUN DATA`: a run's model before and after fine-tuning, on the same images."""

from __future__ import annotations

import json


def test_eval_json_has_before_and_after_like_zeroshot(cli, tmp_path, trained):
    out_json = tmp_path / "eval.json"
    code, out, err = cli("eval", trained["full"], trained["data"], "--json", out_json,
                         "--device", "cpu", "--no-cache")
    assert code == 0, err
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(d) == {"before", "after"}
    for side in ("before", "after"):
        for key in ("n", "classes", "accuracy", "balanced_accuracy", "per_class", "confusion_matrix", "split"):
            assert key in d[side]
        assert d[side]["n"] == 18 and d[side]["split"] == "all"
    assert d["after"]["model"] == str(trained["full"]) and d["after"]["wise_alpha"] is None
    assert d["before"]["model"] == str(trained["start"])
    assert "before" in out and "after" in out and "balanced accuracy" in out


def test_eval_wise_alpha_zero_is_the_starting_model_and_is_labelled(cli, tmp_path, trained):
    out_json = tmp_path / "eval.json"
    code, out, _ = cli("eval", trained["full"], trained["data"], "--wise-alpha", "0",
                       "--json", out_json, "--device", "cpu")
    assert code == 0
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["after"]["wise_alpha"] == 0.0
    assert d["after"]["confusion_matrix"] == d["before"]["confusion_matrix"]
    assert "WiSE-FT alpha 0" in out


def test_linear_probe_eval_scores_the_trained_head(cli, tmp_path, trained):
    out_json = tmp_path / "eval.json"
    # The old spelling, --data DATA, still works.
    code, out, _ = cli("eval", trained["probe"], "--data", trained["data"], "--json", out_json,
                       "--device", "cpu")
    assert code == 0
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert d["after"]["accuracy"] == 1.0 > d["before"]["accuracy"]


def test_eval_without_data_asks_for_it(cli, trained):
    code, _, err = cli("eval", trained["full"])
    assert code == 2 and "DATA is required" in err and len(err.strip().splitlines()) == 1

