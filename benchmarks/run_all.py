"""Run every benchmark in benchmarks/ and write one report: report.json and report.md.

Each ``bench_*.py`` takes ``--out FILE`` and writes JSON of the form
``{"benchmark": str, "machine": str, "rows": [{"measure", "beamops", "baseline", "unit",
"ratio", "goal"}], ...}``; the rows become the markdown table. Ratios are measured side by side
in one run, because these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--only", help="run only benchmarks whose file name contains this")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    reports, failures = [], []
    for script in sorted(HERE.glob("bench_*.py")):
        if args.only and args.only not in script.name:
            continue
        out = args.out / f"{script.stem}.json"
        print(f"== {script.name}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(script), "--out", str(out)], cwd=HERE.parent)
        if done.returncode != 0 or not out.exists():
            failures.append(script.name)
            continue
        report = json.loads(out.read_text())
        report["wall_s"] = round(time.monotonic() - started, 1)
        reports.append(report)

    (args.out / "report.json").write_text(json.dumps({"reports": reports, "failed": failures}, indent=2))
    (args.out / "report.md").write_text(markdown(reports, failures))
    print((args.out / "report.md").read_text())
    sys.exit(1 if failures else 0)


def markdown(reports: list[dict], failures: list[str]) -> str:
    lines = ["| benchmark | measure | beamops | baseline | unit | ratio | goal |",
             "|---|---|---|---|---|---|---|"]
    for report in reports:
        for row in report.get("rows", []):
            lines.append(
                f"| {report['benchmark']} | {row['measure']} | {_fmt(row.get('beamops'))} | "
                f"{_fmt(row.get('baseline'))} | {row.get('unit', '')} | {_fmt(row.get('ratio'))} | "
                f"{row.get('goal', '')} |"
            )
    if failures:
        lines.append(f"\nFailed: {', '.join(failures)}")
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
