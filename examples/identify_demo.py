"""1:N identification in a few lines: enrol people from a folder tree, then say who is in a photo.

    FACEPIPE_API_KEYS=demo-admin-key-0123 facepipe serve &      # a server with an admin key
    python examples/identify_demo.py PEOPLE_DIR PHOTO [--url ...] [--api-key demo-admin-key-0123]

PEOPLE_DIR holds one folder per person (the folder name is the subject id) with a few photos each.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from facepipe.client import Client
from facepipe.errors import Conflict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("people", type=Path)
    ap.add_argument("photo", type=Path)
    ap.add_argument("--url", default="http://127.0.0.1:9998")
    ap.add_argument("--api-key", default="demo-admin-key-0123")
    args = ap.parse_args()
    with Client(args.url, args.api_key) as c:
        for folder in sorted(p for p in args.people.iterdir() if p.is_dir()):
            with contextlib.suppress(Conflict):  # enrolled before: enrolment is idempotent per image
                c.create_subject(folder.name.replace("_", " "), id=folder.name)
            images = sorted(folder.glob("*.jpg"))[:5]
            result = c.enrol(folder.name, images, on_no_face="skip")
            print(f"{folder.name}: {len(result.faces)} faces enrolled, {len(result.skipped)} images skipped")
        for face in c.identify([args.photo], k=3)[0].faces:
            x1, y1, x2, y2 = (round(v) for v in face.box)
            best = face.matches[0] if face.matches else None
            who = best.name if best and best.match else "unknown"
            sims = ", ".join(f"{m.subject} {m.similarity:.3f}" for m in face.matches)
            print(f"face at ({x1},{y1})-({x2},{y2}): {who}   [{sims}]")


if __name__ == "__main__":
    main()
