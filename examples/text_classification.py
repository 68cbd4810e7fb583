"""An SST-2-style text classification data pipeline: zip -> TSV -> tokens -> vocabulary -> bucketed, padded batches.

SST-2 ships as ``SST-2.zip`` holding ``SST-2/train.tsv`` (a ``sentence<TAB>label`` header, then one
lower-cased sentence and a 0/1 label per line). This example writes an archive in that format locally
(no download), then builds the torchtext-style pipeline with Loom's DataPipes:

    FileOpener(zip) -> load_from_zip -> filter(train.tsv) -> parse_csv(TSV) -> tokenize
    -> vocabulary -> token ids -> bucketbatch (similar lengths together) -> pad to a tensor

Checks, against the plain-Python way (``zipfile`` + ``csv``): the same (token ids, label) pairs come out,
each exactly once; every batch is padded correctly; bucketing wastes less padding than plain batching;
and an iterator restored from a mid-epoch ``state_dict()`` yields exactly the remaining batches.

Run: ``python examples/text_classification.py [--sentences N] [--quick]``
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import sys
import tempfile
import zipfile
from collections import Counter

import torch

from loom.data import IterDataPipe, set_graph_random_seed
from loom.data.iter import FileOpener, IterableWrapper

PAD, UNK = "<pad>", "<unk>"
POSITIVE = [
    "a",
    "moving",
    "touching",
    "funny",
    "smart",
    "beautiful",
    "charming",
    "gripping",
    "wonderful",
    "delightful",
    "clever",
]
NEGATIVE = [
    "a",
    "dull",
    "tedious",
    "boring",
    "clumsy",
    "bland",
    "lifeless",
    "pointless",
    "tiresome",
    "muddled",
    "forgettable",
]
FILLER = [
    "the",
    "film",
    "movie",
    "story",
    "plot",
    "cast",
    "is",
    "was",
    "and",
    "but",
    "with",
    "of",
    "its",
    "this",
    "that",
    "it",
    "an",
]


def write_sst2_zip(path: str, n: int, seed: int = 0) -> None:
    """Writes ``SST-2/train.tsv`` and ``SST-2/dev.tsv`` in SST-2's format into the zip at ``path``."""
    rng = random.Random(seed)
    for split, count in (("train", n), ("dev", max(1, n // 10))):
        buf = io.StringIO()
        buf.write("sentence\tlabel\n")
        for _ in range(count):
            label = rng.randint(0, 1)
            words = POSITIVE if label else NEGATIVE
            length = rng.randint(3, 40)
            sentence = " ".join(rng.choice(words if rng.random() < 0.3 else FILLER) for _ in range(length))
            buf.write(f"{sentence} \t{label}\n")  # SST-2's sentences end with a space
        mode = "w" if split == "train" else "a"
        with zipfile.ZipFile(path, mode) as z:
            z.writestr(f"SST-2/{split}.tsv", buf.getvalue())


def tokenize(sentence: str) -> list[str]:
    return sentence.split()


def build_vocab(token_lists: IterDataPipe | list[list[str]], min_freq: int = 1) -> dict[str, int]:
    """Token -> id: the specials first, then tokens by decreasing frequency (ties alphabetical)."""
    counts = Counter(tok for tokens in token_lists for tok in tokens)
    ordered = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
    return {tok: i for i, tok in enumerate([PAD, UNK, *ordered])}


def sst2_rows(zip_path: str, split: str) -> IterDataPipe:
    """(sentence, label) pairs of one split, read straight from the archive."""
    return (
        FileOpener(IterableWrapper([zip_path]), mode="b")
        .load_from_zip()
        .filter(lambda item: item[0].endswith(f"{split}.tsv"))
        .parse_csv(skip_lines=1, delimiter="\t", quoting=csv.QUOTE_NONE)
        .map(lambda row: (row[0], int(row[1])))
    )


def pad_batch(batch: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(ids) for ids, _ in batch)
    tokens = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    for i, (ids, _) in enumerate(batch):
        tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return tokens, torch.tensor([label for _, label in batch])


def batches(zip_path: str, vocab: dict[str, int], batch_size: int) -> IterDataPipe:
    unk = vocab[UNK]
    return (
        sst2_rows(zip_path, "train")
        .map(lambda pair: ([vocab.get(t, unk) for t in tokenize(pair[0])], pair[1]))
        .bucketbatch(
            batch_size, batch_num=8, bucket_num=2, sort_key=lambda b: sorted(b, key=lambda p: len(p[0]))
        )
        .map(lambda batch: pad_batch(batch, vocab[PAD]))
    )


def plain_python(zip_path: str) -> list[tuple[str, int]]:
    with zipfile.ZipFile(zip_path) as z, z.open("SST-2/train.tsv") as f:
        reader = csv.reader(io.TextIOWrapper(f, "utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [(row[0], int(row[1])) for row in reader]


def unpad(tokens: torch.Tensor, labels: torch.Tensor, pad_id: int) -> list[tuple[tuple[int, ...], int]]:
    out = []
    for row, label in zip(tokens.tolist(), labels.tolist()):
        while row and row[-1] == pad_id:
            row.pop()
        out.append((tuple(row), label))
    return out


def padding_fraction(all_batches: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int) -> float:
    total = sum(t.numel() for t, _ in all_batches)
    return sum(int((t == pad_id).sum()) for t, _ in all_batches) / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite's run)")
    args = parser.parse_args()
    n = 400 if args.quick else args.sentences
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = os.path.join(tmp, "SST-2.zip")
        write_sst2_zip(zip_path, n)

        vocab = build_vocab(sst2_rows(zip_path, "train").map(lambda pair: tokenize(pair[0])))
        reference_rows = plain_python(zip_path)
        reference_vocab = build_vocab([tokenize(s) for s, _ in reference_rows])
        same_vocab = vocab == reference_vocab
        print(f"vocabulary: {len(vocab)} tokens; same as the plain-Python one: {same_vocab}")
        ok &= same_vocab

        pipe = set_graph_random_seed(batches(zip_path, vocab, args.batch_size), 0)
        ours = list(pipe)
        got = sorted(pair for tokens, labels in ours for pair in unpad(tokens, labels, vocab[PAD]))
        want = sorted((tuple(vocab[t] for t in tokenize(s)), y) for s, y in reference_rows)
        same_rows = got == want
        print(f"{len(ours)} batches of up to {args.batch_size}; every sentence exactly once: {same_rows}")
        ok &= same_rows
        # No sentence is empty, so a correctly padded batch has no padding in its first column.
        padded_ok = all(bool((t[:, 0] != vocab[PAD]).all()) for t, _ in ours)
        full_ok = len(ours) == -(-n // args.batch_size)
        print(f"padding only at the ends of rows: {padded_ok}; as many batches as ceil(n / batch): {full_ok}")
        ok &= padded_ok and full_ok

        random.Random(0).shuffle(want)
        unsorted = [pad_batch(list(chunk), vocab[PAD]) for chunk in _chunks(want, args.batch_size)]
        ours_pad, plain_pad = padding_fraction(ours, vocab[PAD]), padding_fraction(unsorted, vocab[PAD])
        print(f"padding: bucketed {ours_pad:.1%} of tokens, shuffled plain batches {plain_pad:.1%}")
        ok &= ours_pad < plain_pad

        # Exact mid-epoch resume: save after 3 batches, restore into a fresh iterator, compare the rest.
        it = iter(set_graph_random_seed(batches(zip_path, vocab, args.batch_size), 0))
        for _ in range(3):
            next(it)
        state = it.state_dict()
        rest = list(it)
        resumed = iter(set_graph_random_seed(batches(zip_path, vocab, args.batch_size), 0))
        resumed.load_state_dict(state)
        again = list(resumed)
        same_rest = len(again) == len(rest) and all(
            torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(rest, again)
        )
        print(f"resumed after 3 batches: the remaining {len(rest)} batches are identical: {same_rest}")
        ok &= same_rest
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def _chunks(items: list, size: int) -> list[list]:  # type: ignore[type-arg]
    return [items[i : i + size] for i in range(0, len(items), size)]


if __name__ == "__main__":
    sys.exit(main())
