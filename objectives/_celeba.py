"""CelebA's files: the attribute list, the evaluation partition and the image folder.

``list_attr_celeba.txt`` (official: a count line, a line of 40 attribute names, then
``000001.jpg -1 1 ...``) or ``list_attr_celeba.csv`` (Kaggle: ``image_id,...`` header, -1/1
values); ``list_eval_partition.txt`` / ``.csv`` (``000001.jpg 0``; 0 train / 1 val / 2 test);
``img_align_celeba/*.jpg`` (Kaggle's nested ``img_align_celeba/img_align_celeba/`` and the
official ``Img/``, ``Anno/``, ``Eval/`` folders work too). Used by ``celeba_gender``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ._base import TaskError

ATTRIBUTE = "Male"
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def _find_file(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "Anno", root / "Eval"):
        for ext in (".txt", ".csv"):
            p = folder / (stem + ext)
            if p.is_file():
                return p
    return None


def _image_dir(root: Path) -> Path:
    for d in (
        root / "img_align_celeba" / "img_align_celeba",
        root / "img_align_celeba",
        root / "Img" / "img_align_celeba",
    ):
        if d.is_dir() and any(d.glob("*.jpg")):
            return d
    raise TaskError(
        f"no img_align_celeba/ folder with .jpg images in {root}; extract img_align_celeba.zip there "
        "(CelebA's aligned and cropped images)"
    )


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CelebA list in the official whitespace format or Kaggle's CSV."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise TaskError(f"cannot read {path}: {e}; re-download it") from None
    if path.suffix == ".csv":
        table = [r for r in csv.reader(text.splitlines()) if r]
        return ([c.strip() for c in table[0]], table[1:]) if table else ([], [])
    lines = [line.split() for line in text.splitlines() if line.strip()]
    return [], lines


def read_attribute(path: Path, attribute: str = ATTRIBUTE) -> tuple[list[str], np.ndarray]:
    """File names and 0/1 labels of one attribute (-1 -> 0, 1 -> 1), in file order."""
    header, rows = _rows(path)
    if path.suffix == ".csv":
        names = header[1:]
    else:
        # official: line 1 the image count, line 2 the 40 attribute names, then one row per image
        if len(rows) < 2:
            raise TaskError(f"{path} is not a CelebA attribute list (too short); re-download list_attr_celeba.txt")
        names, rows = rows[1], rows[2:]
    if attribute not in names:
        raise TaskError(f"{path} has no attribute {attribute!r}; re-download list_attr_celeba.txt (40 attributes)")
    col = names.index(attribute) + 1
    files, labels = [], []
    for r in rows:
        if len(r) <= col or r[col] not in ("1", "-1"):
            raise TaskError(f"{path}: bad row {' '.join(r)[:80]!r}; re-download list_attr_celeba")
        files.append(r[0])
        labels.append(1 if r[col] == "1" else 0)
    return files, np.asarray(labels, dtype="int64")


def read_partition(path: Path) -> dict[str, int]:
    _, rows = _rows(path)
    out = {}
    for r in rows:
        if len(r) >= 2 and r[1].strip() in ("0", "1", "2"):
            out[r[0].strip()] = int(r[1])
    if not out:
        raise TaskError(f"{path} has no 'image partition' rows (partition 0/1/2); re-download list_eval_partition")
    return out


def celeba_splits(root: Path, *, max_images: int) -> tuple[dict[str, tuple[list[str], np.ndarray]], int, str]:
    """Per-split (paths, labels), the number of listed images missing on disk, and how it was split."""
    attr = _find_file(root, "list_attr_celeba")
    if attr is None:
        raise TaskError(
            f"no list_attr_celeba.txt or list_attr_celeba.csv in {root}; put CelebA's attribute list "
            "(Anno/list_attr_celeba.txt) beside img_align_celeba/"
        )
    images = _image_dir(root)
    files, labels = read_attribute(attr)
    part_file = _find_file(root, "list_eval_partition")
    names = ("train", "val", "test")
    if part_file is not None:
        part = read_partition(part_file)
        caps = [round(max_images * f) for f in SPLIT_FRACTIONS] if max_images else [None] * 3
        idx = {}
        for k, split in enumerate(names):
            sel = [i for i, f in enumerate(files) if part.get(f) == k]
            idx[split] = sel[: caps[k]] if caps[k] is not None else sel
        how = f"official partition ({part_file.name})" + (
            f", each split's first {caps[0]}/{caps[1]}/{caps[2]}" if max_images else ""
        )
    else:
        n = min(len(files), max_images) if max_images else len(files)
        n_tr, n_va = round(n * SPLIT_FRACTIONS[0]), round(n * SPLIT_FRACTIONS[1])
        idx = {"train": list(range(n_tr)), "val": list(range(n_tr, n_tr + n_va)), "test": list(range(n_tr + n_va, n))}
        how = f"first {n} images of {attr.name} in order, 80/10/10"
    splits: dict[str, tuple[list[str], np.ndarray]] = {}
    missing = 0
    for split in names:
        paths = [str(images / files[i]) for i in idx[split]]
        exists = np.asarray([Path(p).is_file() for p in paths], dtype=bool)
        missing += int((~exists).sum())
        kept = np.asarray(idx[split], dtype=int)[exists] if len(paths) else np.zeros(0, dtype=int)
        splits[split] = ([p for p, e in zip(paths, exists) if e], labels[kept])
        if not splits[split][0]:
            raise TaskError(_empty_split_message(root, images, attr, files, split, how, part_file))
    return splits, missing, f"CelebA {root}: {how}"


def _empty_split_message(
    root: Path, images: Path, attr: Path, files: list[str], split: str, how: str, part_file: Path | None
) -> str:
    """Why a split has no image on disk, and the fix: usually only some of CelebA's images are there."""
    present = [(images / f).is_file() for f in files]
    n_present = sum(present)
    lead = next((i for i, p in enumerate(present) if not p), len(present))  # images present from the top
    have = f"only {n_present:,} of the {len(files):,} images listed in {attr.name} are in {images}"
    if part_file is not None:
        return (
            f"the {split} split of {root} is empty ({how}): {have}, none of them in the {split} "
            f"partition of {part_file.name}; add the missing images, or move {part_file.name} away "
            f"to split the first max_images images 80/10/10 (then lower --option max_images to at most {lead:,})"
        )
    if lead >= 10:
        fix = f"lower --option max_images to at most {lead:,} (the images present from the top of {attr.name})"
    else:
        fix = f"lower --option max_images to the number of images you have ({n_present:,})"
    return f"the {split} split of {root} is empty ({how}): {have}; {fix}, or add the missing images"
