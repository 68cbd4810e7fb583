"""Harness self-check: a Python-level call vs a tight loop. Shows the harness output format."""

from __future__ import annotations

from harness import Suite, cli_args


def main() -> None:
    args = cli_args(__doc__)
    n = 1_000 if args.quick else 100_000
    suite = Suite("overhead", repeats=5 if args.quick else 20)
    data = list(range(n))
    suite.compare("sum of a list", loom=lambda: sum(data), items_per_call=n, python_loop=lambda: _loop(data))
    suite.finish(args.json)


def _loop(data: list[int]) -> int:
    total = 0
    for x in data:
        total += x
    return total


if __name__ == "__main__":
    main()
