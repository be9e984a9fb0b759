"""The benchmarks' big order: one YAML act whose `file:` list names `n` mirrors."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_bulk_order"]


def write_bulk_order(folder: Path, order_yaml: str, n: int, header: str = "") -> None:
    """`folder/order.yaml` and its `lists/names.txt` of n names (after `header`),
    written in slices so a million names never sit in memory as one string."""
    (folder / "lists").mkdir(parents=True)
    (folder / "order.yaml").write_text(order_yaml, encoding="utf-8")
    with open(folder / "lists" / "names.txt", "w", encoding="ascii") as f:
        f.write(header)
        step = 50_000
        for start in range(0, n, step):
            f.write("".join(f"mirror{i}.host{i % 997}.example\n"
                            for i in range(start, min(n, start + step))))
