"""Markdown tables of a finished study (``results.json``), as the README quotes them.

    python scripts/study_tables.py studies/default        # reference runs + the rate grid
    python scripts/study_tables.py studies/factorial --grid-only

The figures are read, never typed: rerun this after a study to refresh the README.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:+.1f}%".replace("-", "−")


def reference_table(results: dict) -> str:
    rows = [c for c in results["cells"] if c.get("reference")]
    rows.sort(key=lambda c: c["bpb_before"])
    gen = rows[0]["general_ppl_before"]
    out = ["| domain | kind | base bits/byte | ppl before | ppl after | change | "
           f"general ppl after ({gen:.2f} before) | forgetting |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in rows:
        out.append(f"| {c['domain']} | {c['kind']} | {c['bpb_before']:.3f} | {c['ppl_before']:.2f} | "
                   f"{c['ppl_after']:.2f} | {pct(c['delta_ppl_pct'])} | {c['general_ppl_after']:.2f} | "
                   f"{pct(c['forgetting_pct'])} |")
    return "\n".join(out)


def grid_table(results: dict) -> str:
    """In-domain change (general change) per domain and rate: the phase diagram as numbers."""
    cells = [c for c in results["cells"] if not c.get("variant") or str(c["variant"]).startswith("lr=")]
    rates = sorted({c["lr"] for c in cells})
    by = {(c["domain"], c["lr"]): c for c in cells}
    domains = sorted({c["domain"] for c in cells}, key=lambda d: min(c["bpb_before"] for c in cells
                                                                      if c["domain"] == d))
    out = ["| domain | kind | " + " | ".join(f"lr {r:g}" for r in rates) + " |",
           "| --- | --- | " + " | ".join("---:" for _ in rates) + " |"]
    for d in domains:
        kind = next(c["kind"] for c in cells if c["domain"] == d)
        row = []
        for r in rates:
            c = by.get((d, r))
            if c is None:
                row.append("")
                continue
            change = pct(c["delta_ppl_pct"])
            row.append(f"**{change}** ({pct(c['forgetting_pct'])})" if c["delta_ppl_pct"] > 0
                       else f"{change} ({pct(c['forgetting_pct'])})")
        out.append(f"| {d} | {kind} | " + " | ".join(row) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--grid-only", action="store_true")
    args = ap.parse_args()
    results = json.loads((args.study / "results.json").read_text())
    if not args.grid_only:
        print(reference_table(results), end="\n\n")
    print(grid_table(results))
    seconds = results.get("study", {}).get("seconds")
    if seconds:
        print(f"\nstudy seconds (store): {seconds:.0f}")


if __name__ == "__main__":
    main()
