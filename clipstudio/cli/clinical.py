"""The clinical metrics as the terminal shows them: a few short lines under a command's result table.

They read the JSON blocks (``auc``, ``calibration``, ``conformal``, ``operating_point``,
``subgroups``, ``validation``, ``paired``), so the terminal and ``--json`` always agree.
"""

from __future__ import annotations

WIDTH = 19  # the label column, as in the accuracy lines above


def clinical_lines(d: dict) -> list[str]:
    """AUC with CI, ECE before/after and T, conformal coverage and set size, the binary operating point."""
    if "auc" not in d:
        return []
    lines = []
    validation = d.get("validation") or {}
    if validation.get("split"):
        lines.append(_line("fitted on", f"{validation['description']} (never the evaluated images)"))
    else:
        lines.append(_line("fitted on", f"nothing: {validation.get('reason') or 'no validation images'}"))
    auc = d["auc"]
    positive = auc.get("positive_class")
    lines.append(_line(f"AUC ({positive})" if positive else "AUC (macro)", _estimate(auc["macro"])))
    cal = d["calibration"]
    if cal.get("ece") is None:
        lines.append(_line("calibration", "ECE undefined"))
    elif cal.get("temperature") is None:
        lines.append(_line("calibration", f"ECE {cal['ece']:.3f} (no temperature fitted)"))
    else:
        lines.append(_line("calibration", f"ECE {cal['ece']:.3f} -> {cal['ece_after']:.3f} after temperature "
                                          f"scaling, T = {cal['temperature']:.3g}"))
    conformal = d["conformal"]
    target = f"{conformal['coverage_target']:.0%}"
    if conformal.get("coverage") is None:
        lines.append(_line("conformal sets", f"none ({target} target): {conformal.get('reason')}"))
    else:
        lines.append(_line("conformal sets", f"coverage {conformal['coverage']:.3f} (target {target}), "
                                             f"mean set size {conformal['mean_set_size']:.2f}"))
    point = d.get("operating_point")
    if point is not None:
        lines.extend(_operating_point_lines(point))
    if d.get("subgroups"):
        lines.extend(subgroup_lines(d["subgroups"]))
    return lines


def subgroup_lines(report: dict) -> list[str]:
    """One line per subgroup: n, accuracy and balanced accuracy with CIs; flagged ones say so."""
    lines = [_line("subgroups", f"by {report['grouping']}" if report.get("grouping") else "")]
    rows = [("all images", report["overall"]), *report["groups"].items()]
    width = max(len(name) for name, _ in rows)
    for name, g in rows:
        flag = f"  CLEARLY WORSE on {', '.join(m.replace('_', ' ') for m in g['flagged'])}" if g["flagged"] else ""
        lines.append(_line("", f"{name:<{width}}  n={g['n']:<5} accuracy {_estimate(g['accuracy'], 2, False, False)}"
                               f"  balanced {_estimate(g['balanced_accuracy'], 2, False, False)}{flag}"))
    lines.append(_line("", "(clearly worse: even the top of its 95% CI lies below the figure for all images)"))
    return lines


def paired_lines(paired: dict) -> list[str]:
    """The paired comparison: each difference (b - a) with its CI and verdict, and McNemar's test."""
    lines = [f"paired: {paired['b']} - {paired['a']} on the same {paired['n']} images (paired bootstrap 95% CI)"]
    for key, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("macro_auc", "AUC")):
        block = paired[key]
        diff = block["difference"]
        if diff["value"] is None:
            lines.append(_line(label, block["verdict"]))
            continue
        ci = f"  ({diff['ci95'][0]:+.3f} to {diff['ci95'][1]:+.3f})" if diff["ci95"] else ""
        lines.append(_line(label, f"{diff['value']:+.3f}{ci}  {block['verdict']}"))
    m = paired["mcnemar"]
    lines.append(_line("McNemar", f"p = {m['p_value']:.3g} ({m['only_a_right']} images only {paired['a']} gets "
                                  f"right, {m['only_b_right']} only {paired['b']}; {m['method']})"))
    return lines


def _operating_point_lines(point: dict) -> list[str]:
    if point.get("threshold") is None:
        return [_line("operating point", f"none: {point.get('reason')}")]
    rule = {"youden": "max Youden's J", "target_sensitivity": f"sensitivity >= {point.get('target')}",
            "target_specificity": f"specificity >= {point.get('target')}"}.get(point["rule"], point["rule"])
    where = f"chosen on {point['fitted_on']['n']} validation images"
    if point.get("from") == "run folder":
        where = "stored in the run folder, " + where
    lines = [_line("operating point", f"'{point['positive_class']}' when p >= {point['threshold']:.3f} "
                                      f"({rule}, {where})")]
    names = {"sensitivity": "sensitivity", "specificity": "specificity", "ppv": "PPV", "npv": "NPV"}
    # An undefined figure shows as "undefined" in its place, its reason on a line of its own.
    parts = [f"{name} {_estimate(point[key], digits=2, why=False)}" for key, name in names.items()]
    lines.append(_line("", "  ".join(parts[:2])))
    lines.append(_line("", "  ".join(parts[2:])))
    lines.extend(_line("", f"({name}: {point[key]['reason']})") for key, name in names.items()
                 if point[key].get("value") is None)
    return lines


def _estimate(e: dict, digits: int = 3, why: bool = True, n: bool = True) -> str:
    if e.get("value") is None:
        return f"undefined ({e.get('reason')})" if why else "undefined"
    ci = e.get("ci95")
    interval = f" (95% CI {ci[0]:.{digits}f}-{ci[1]:.{digits}f})" if ci else ""
    return f"{e['value']:.{digits}f}{interval}" + (f", n={e['n']}" if n else "")


def _line(label: str, text: str) -> str:
    return f"{label:<{WIDTH}}{text}"
