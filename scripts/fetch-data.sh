#!/usr/bin/env bash
# Fetch the MovieLens 100K data set into data/ml-100k/ (git-ignored).
#
# MovieLens data: F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and
# Context", ACM Transactions on Interactive Intelligent Systems (TiiS) 5(4):19, 2015.
# GroupLens Research, University of Minnesota. Non-commercial use only; see the
# MovieLens licence terms.
#
# The files are not committed. They come from the wheel of the Python package
# `recbole==1.2.1`, fetched with the ordinary Python package client (whatever index pip is
# configured to use), which carries them under recbole/dataset_example/ml-100k/:
# ml-100k.inter, ml-100k.item and ml-100k.user (tab-separated, typed headers).
#
# Idempotent: does nothing when data/ml-100k/ml-100k.inter already exists.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo_root/data/ml-100k"

if [[ -f "$dest/ml-100k.inter" ]]; then
    echo "fetch-data: $dest already present, nothing to do"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-data: downloading recbole==1.2.1 (wheel only, no dependencies)"
python3 -m pip download recbole==1.2.1 --no-deps --only-binary=:all: -d "$tmp" >&2

wheel="$(find "$tmp" -maxdepth 1 -name 'recbole-1.2.1-*.whl' | head -n 1)"
if [[ -z "$wheel" ]]; then
    echo "fetch-data: no recbole 1.2.1 wheel in $tmp" >&2
    exit 1
fi

# Extract into a staging folder first and move into place last, so that an interrupted run
# never leaves a partial data set that the idempotency check would accept.
mkdir -p "$repo_root/data"
stage="$(mktemp -d "$repo_root/data/.ml-100k.XXXXXX")"
trap 'rm -rf "$tmp" "$stage"' EXIT

python3 - "$wheel" "$stage" <<'PY'
import os
import sys
import zipfile

wheel, out = sys.argv[1], sys.argv[2]
prefix = "recbole/dataset_example/ml-100k/"
with zipfile.ZipFile(wheel) as zf:
    for ext in ("inter", "item", "user"):
        name = f"{prefix}ml-100k.{ext}"
        with zf.open(name) as src, open(os.path.join(out, f"ml-100k.{ext}"), "wb") as dst:
            dst.write(src.read())
PY

rm -rf "$dest"
mv "$stage" "$dest"
chmod 755 "$dest"
echo "fetch-data: wrote $dest:"
ls -l "$dest"
