#!/usr/bin/env python3
"""The control plane's floors (docs/ARCHITECTURE.md): each floor may import only the floors
listed for it. Reads every `crate::…` path in control-plane/src (uses and inline paths, comments
left out) and prints each one that points at a floor it may not see. Exit 1 on any.

    python3 scripts/check-floors.py
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "control-plane" / "src"

# floor -> the floors it may import (itself included)
ALLOWED = {
    "platform": {"platform"},
    "domain": {"platform", "domain"},
    "payments": {"platform", "domain", "payments"},
    "workflows": {"platform", "domain", "payments", "workflows"},
    "write": {"platform", "domain", "write"},
    "workers": {"platform", "domain", "payments", "workflows", "write", "workers"},
    "api": {"platform", "domain", "payments", "workflows", "write", "workers", "api"},
    "app": {"platform", "domain", "payments", "workflows", "write", "workers", "api", "app"},
}

PATH = re.compile(r"\bcrate::([a-z_]+)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def floor_of(path: pathlib.Path) -> str | None:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else None


def code_of(text: str) -> str:
    # Comments say why, and may name any module.
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def main() -> int:
    bad = []
    for path in sorted(SRC.rglob("*.rs")):
        floor = floor_of(path)
        if floor is None:
            continue  # lib.rs, main.rs: the crate root sees everything
        if floor not in ALLOWED:
            bad.append(f"{path.relative_to(SRC)}: '{floor}' is not a floor")
            continue
        code = code_of(path.read_text())
        names = set(PATH.findall(code))
        for group in USE_GROUP.findall(code):
            names.update(re.findall(r"(?:^|[,{\s])([a-z_]+)(?=\s*(?:::|,|\}|$| as))", group))
        for name in sorted(names):
            if name in ALLOWED and name not in ALLOWED[floor]:
                bad.append(f"{path.relative_to(SRC)}: {floor} imports {name}")
    for line in bad:
        print(line)
    print(f"upward imports: {len(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
