"""An attacker's script: edit one record of a run's manifest, then recompute every hash and link.

It knows the manifest format (sha256 of each record's JSON without "hash", chained through
prev_hash from the header's hash) but uses no runbook code, as someone editing an archive would.

    python rehash.py RUN_DIR SEQ KEY=JSON [KEY=JSON ...]   # e.g. 2 status='"SUCCEEDED"'
    python rehash.py RUN_DIR --truncate N                   # keep the first N records only
"""

import hashlib
import json
import sys
from pathlib import Path


def digest(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k != "hash"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def main(run_dir: Path, args: list[str]) -> None:
    path = run_dir / "manifest.json"
    man = json.loads(path.read_text())
    if args[0] == "--truncate":
        man["records"] = man["records"][: int(args[1])]
    else:
        rec = man["records"][int(args[0]) - 1]
        for pair in args[1:]:
            key, _, value = pair.partition("=")
            rec[key] = json.loads(value)
    prev = digest(man["header"])
    for rec in man["records"]:
        nb = rec.get("notebook")
        if nb and (run_dir / nb).exists():
            rec["notebook_sha256"] = hashlib.sha256((run_dir / nb).read_bytes()).hexdigest()
        if rec.get("files"):
            rec["files"] = {
                rel: hashlib.sha256((run_dir / rel).read_bytes()).hexdigest()
                for rel in rec["files"]
                if (run_dir / rel).exists()
            }
        rec["prev_hash"] = prev
        rec["hash"] = prev = digest(rec)
    path.write_text(json.dumps(man, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
