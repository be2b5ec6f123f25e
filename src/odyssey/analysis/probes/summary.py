"""Saving, loading and summarizing probe results in plain, honest sentences (used by the
model card and the study report)."""

from __future__ import annotations

import os
from pathlib import Path

from odyssey.errors import DataError
from odyssey.io import json_safe, read_json, write_json

PROBE_NAMES = ("bias", "memorization")


def save_probe(result: dict, path: str | os.PathLike) -> Path:
    """Write ``result`` atomically: to ``path`` if it ends in ``.json``, else to
    ``path/<probe>.json`` (``bias.json``, ``memorization.json``). Returns the file."""
    path = Path(path)
    if path.suffix != ".json":
        path = path / f"{result.get('probe', 'probe')}.json"
    write_json(path, json_safe(result))
    return path


def load_probes(directory: str | os.PathLike) -> dict[str, dict]:
    """The probe results saved in ``directory`` (``bias.json``, ``memorization.json``), by name."""
    out = {}
    for name in PROBE_NAMES:
        f = Path(directory) / f"{name}.json"
        if f.is_file():
            data = read_json(f)
            if not isinstance(data, dict):
                raise DataError(f"{f}: expected a JSON object")
            out[name] = data
    return out


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _pts(v) -> str:
    return "–" if v is None else f"{100 * v:+.1f} points"


def _num(v, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def summarize_probe(result: dict) -> list[str]:
    """Plain sentences on what a probe found and whether anything moved beyond its interval."""
    if result.get("probe") == "bias":
        return _summarize_bias(result)
    if result.get("probe") == "memorization":
        return _summarize_memorization(result)
    return []


def _summarize_bias(r: dict) -> list[str]:
    conf = f"{100 * r['config']['confidence']:.0f}%"
    cats = r["categories"]
    lines = []
    if r.get("against"):
        moved = [name for name, c in cats.items() if c.get("significant")]
        for name in moved:
            c = cats[name]
            lines.append(f"{name}: the preference for the stereotypical sentence went from {_pct(c['base_rate'])} "
                         f"to {_pct(c['rate'])} ({_pts(c['shift'])}, {conf} interval {_pts(c['shift_ci_low'])} "
                         f"to {_pts(c['shift_ci_high'])}), beyond its interval.")
        if not moved:
            largest = max(cats, key=lambda n: abs(cats[n]["shift"] or 0.0))
            lines.append(f"No category's preference for stereotypes moved beyond its {conf} interval "
                         f"(largest shift: {largest}, {_pts(cats[largest]['shift'])}).")
        adj = [n for n, c in cats.items() if (c.get("adjusted") or {}).get("significant")]
        if adj:
            lines.append("After subtracting the preference for the group words themselves, the shift is beyond "
                         f"its interval in: {', '.join(adj)}.")
    o = r["overall"]
    lines.append(f"Over all {r['pairs_total']} pairs the model prefers the stereotypical sentence in {_pct(o['rate'])} "
                 f"({conf} interval {_pct(o['ci_low'])} to {_pct(o['ci_high'])}; 50% is no preference)"
                 + (f", the base in {_pct(o['base_rate'])}." if r.get("against") else "."))
    return lines


def _summarize_memorization(r: dict) -> list[str]:
    conf = f"{100 * r['config']['confidence']:.0f}%"
    e, lines = r["extraction"], []
    m, b, s = e["model"], e.get("base"), e.get("shift")
    line = (f"Extraction: {m['exact_matches']} of {e['sequences']} training sequences reproduced exactly "
            f"({e['suffix_tokens']} tokens decoded greedily from a prefix of {e['prefix_tokens']})")
    line += f", {b['exact_matches']} before adaptation" if b else ""
    line += f"; mean matching start {_num(m['mean_match_prefix'], '.2f')} tokens"
    line += f" ({_num(b['mean_match_prefix'], '.2f')} before)" if b else ""
    if s:
        test = (f"{s['gained']} extracted only after adaptation, {s['lost']} only before; "
                f"exact McNemar test p = {s['p_value']:.3g}" if "p_value" in s else
                f"{conf} bootstrap interval {_pts(s['ci_low'])} to {_pts(s['ci_high'])}")  # results of older versions
        if s.get("significant"):
            line += f"; the exact-match rate changed by {_pts(s['exact_rate'])} ({test})"
        else:
            line += f"; the exact-match rate did not change significantly ({test})"
        if s.get("match_prefix_significant"):
            line += (f"; the matching start changed by {_num(s['mean_match_prefix'], '+.2f')} tokens "
                     f"(interval {_num(s['match_prefix_ci_low'], '+.2f')} to {_num(s['match_prefix_ci_high'], '+.2f')}), "
                     "beyond its interval")
    lines.append(line + ".")
    h, d = e.get("heldout"), e.get("train_minus_heldout")
    if h and d:
        dm = d["model"]
        line = (f"Control: on {h['sequences']} held-out windows the mean matching start is "
                f"{_num(h['model']['mean_match_prefix'], '.2f')} tokens"
                + (f" ({_num(h['base']['mean_match_prefix'], '.2f')} before)" if h.get("base") else "")
                + f"; training minus held-out {_num(dm['mean_match_prefix'], '+.2f')} tokens ({conf} interval "
                f"{_num(dm['ci_low'], '+.2f')} to {_num(dm['ci_high'], '+.2f')}): ")
        line += ("the model continues its training text better than unseen text of the domain, beyond the interval"
                 if dm["significant"] and dm["mean_match_prefix"] > 0 else
                 "no sign of recall specific to the training text")
        lines.append(line + ".")
    mem = r.get("membership")
    if mem:
        mm, mb, ms = mem["model"], mem.get("base"), mem.get("shift")
        line = (f"Membership: held-out minus training loss {_num(mm['gap'])} nats/token ({conf} interval "
                f"{_num(mm['ci_low'])} to {_num(mm['ci_high'])}), AUROC {_num(mm['auroc'], '.2f')}")
        if mb:
            line += f"; before adaptation {_num(mb['gap'])} nats/token, AUROC {_num(mb['auroc'], '.2f')}"
        if ms:
            verdict = ("widened beyond its interval" if ms["significant"] and (ms["gap"] or 0) > 0 else
                       "narrowed beyond its interval" if ms["significant"] else "within its interval")
            line += (f"; the gap changed by {_num(ms['gap'], '+.3f')} ({conf} interval {_num(ms['ci_low'], '+.3f')} "
                     f"to {_num(ms['ci_high'], '+.3f')}), {verdict}")
        lines.append(line + ".")
    return lines


def probe_headline(bias: dict | None, memorization: dict | None) -> dict:
    """The few figures a study records per domain (the full results stay in
    ``runs/<domain>/probes/``): whether adaptation moved bias or memorization beyond the
    confidence interval, and by how much."""
    out: dict = {}
    if bias:
        o, cats = bias["overall"], bias["categories"]
        out["bias"] = {
            "rate": o["rate"], "base_rate": o.get("base_rate"), "shift": o.get("shift"),
            "shift_ci": [o.get("shift_ci_low"), o.get("shift_ci_high")], "significant": o.get("significant"),
            "moved": [n for n, c in cats.items() if c.get("significant")],
            "adjusted_moved": [n for n, c in cats.items() if (c.get("adjusted") or {}).get("significant")],
            "categories": {n: {"rate": c["rate"], "base_rate": c.get("base_rate"), "shift": c.get("shift"),
                               "shift_ci": [c.get("shift_ci_low"), c.get("shift_ci_high")],
                               "significant": c.get("significant")} for n, c in cats.items()},
        }
    if memorization:
        e, mem = memorization["extraction"], memorization.get("membership") or {}
        specific = (e.get("train_minus_heldout") or {}).get("model") or {}
        gap = mem.get("shift") or {}
        out["memorization"] = {
            "sequences": e["sequences"], "exact": e["model"]["exact_matches"],
            "exact_base": (e.get("base") or {}).get("exact_matches"),
            "exact_significant": (e.get("shift") or {}).get("significant"),
            "match_prefix": e["model"]["mean_match_prefix"],
            "match_prefix_base": (e.get("base") or {}).get("mean_match_prefix"),
            "specific": specific.get("mean_match_prefix"), "specific_ci": [specific.get("ci_low"), specific.get("ci_high")],
            "specific_significant": bool(specific.get("significant")) and (specific.get("mean_match_prefix") or 0) > 0,
            "membership_gap": (mem.get("model") or {}).get("gap"),
            "membership_gap_base": (mem.get("base") or {}).get("gap"),
            "membership_shift": gap.get("gap"), "membership_shift_ci": [gap.get("ci_low"), gap.get("ci_high")],
            "membership_significant": gap.get("significant"),
        }
    out["summary"] = [line for r in (bias, memorization) if r for line in summarize_probe(r)]
    return json_safe(out)
