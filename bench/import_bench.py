"""How fast `pushgate users import` stores users (docs/cli.md, "Speed").

Writes a CSV of N users (email, uuid, four attributes, one device each; 1 % of rows bad),
creates a partner on a fresh data dir, and runs the import as a user would, a subprocess
of the console script; prints the import's own figures as JSON. PUSHGATE_DATABASE_URL
measures PostgreSQL instead of the embedded default (a fresh schema is the caller's job).

    .venv/bin/python bench/import_bench.py --rows 200000 [--batch-size 1000] [--devices 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PUSHGATE = str(Path(sys.executable).with_name("pushgate"))
PLATFORMS = ("ios", "android", "huawei")


def write_csv(path: Path, rows: int, devices: bool, bad_share: float, seed: int = 1) -> int:
    """The file; returns how many rows were made bad on purpose."""
    rng = random.Random(seed)
    bad = 0
    header = ["email", "uuid", "name", "age", "city", "tags:list"]
    if devices:
        header += ["device.platform", "device.token", "device.udid", "device.push_optin"]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        for n in range(rows):
            email = f"user{n}@example.com"
            if rng.random() < bad_share:
                email, bad = f"user{n}-at-example.com", bad + 1
            row = [email, f"u-{n}", f"Name {n}", str(18 + n % 60), "Helsinki", "a;b"]
            if devices:
                platform = PLATFORMS[n % 3]
                row += [platform, rng.randbytes(32).hex(), f"udid-{n}", "true"]
            out.writerow(row)
    return bad


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--devices", type=int, choices=(0, 1), default=1)
    parser.add_argument("--bad-share", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        root = Path(tmp)
        data = root / "data"
        source = root / "users.csv"
        bad = write_csv(source, args.rows, bool(args.devices), args.bad_share)
        subprocess.run(
            [PUSHGATE, "partners", "create", "bench", "--data-dir", str(data)],
            check=True,
            capture_output=True,
        )
        started = time.monotonic()
        command = [PUSHGATE, "users", "import", str(source), "--partner", "bench"]
        command += ["--data-dir", str(data), "--batch-size", str(args.batch_size), "--json"]
        out = subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        summary = json.loads(out.stdout)
        assert summary["rejected"] == bad, (summary["rejected"], bad)
        print(
            json.dumps(
                {
                    "backend": "postgresql"
                    if os.environ.get("PUSHGATE_DATABASE_URL")
                    else "sqlite",
                    "rows": args.rows,
                    "devices": bool(args.devices),
                    "batch_size": args.batch_size,
                    "file_mb": round(source.stat().st_size / 1e6, 1),
                    "import_seconds": summary["run_seconds"],
                    "rows_per_second": summary["rows_per_second"],
                    "rows_per_minute": round(args.rows / summary["run_seconds"] * 60),
                    "wall_seconds_with_start": round(wall, 2),
                    "imported": summary["imported"],
                    "rejected": summary["rejected"],
                }
            )
        )


if __name__ == "__main__":
    main()
