#!/usr/bin/env python3
"""Generate a seeded, deterministic file corpus for the benchmarks in bench/run.sh.

Kinds:
  small  files of 1-16 KiB (default 100,000), about 1000 per folder, two folder levels.
  mixed  files from about 20 bytes (the header alone) to 4 MiB (default 10,000): text,
         scripts, binary-like and compressed-like data, most of them small, a few large.
  big    a few large files (default 3 of 512 MiB), written in 64 MiB buffers.

The same --kind, --files, --size and --seed always produce the same bytes. Every file
starts with a header that contains its index, so no two files of a corpus share a digest.
A file named .corpus.json is written last. run.sh reuses a corpus only when that file
exists and records the same parameters, so an interrupted run is regenerated.
"""

import argparse
import json
import os
import random
import shutil
import string
import sys
import time
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB

MANIFEST_NAME = ".corpus.json"
FILES_PER_FOLDER = 1000
FOLDERS_PER_PARENT = 10

TEXT_POOL_SIZE = 4 * MIB
SCRIPT_POOL_SIZE = 4 * MIB
BINARY_POOL_SIZE = 8 * MIB
RANDOM_POOL_SIZE = 8 * MIB
BIG_BUFFER_SIZE = 64 * MIB

DEFAULT_FILES = {"small": 100_000, "mixed": 10_000, "big": 3}

# Content kinds: (name, share of files, file extensions).
CONTENT_KINDS = [
    ("text", 0.35, [".txt", ".md", ".json", ".csv", ".log", ".xml"]),
    ("script", 0.20, [".sh", ".py", ".js", ".ps1", ".pl"]),
    ("binary", 0.30, [".so", ".exe", ".o", ".bin", ".dll"]),
    ("random", 0.15, [".gz", ".zip", ".png", ".jpg"]),
]

# Mixed sizes: (share of files, minimum bytes, maximum bytes), log-uniform inside a bucket.
# The spread follows a typical source or system tree: most files are small, a few are large.
MIXED_SIZE_BUCKETS = [
    (0.30, 8, 1 * KIB),
    (0.38, 1 * KIB, 16 * KIB),
    (0.20, 16 * KIB, 128 * KIB),
    (0.09, 128 * KIB, 1 * MIB),
    (0.03, 1 * MIB, 4 * MIB),
]

BINARY_MAGICS = [
    b"\x7fELF\x02\x01\x01\x00",
    b"MZ\x90\x00\x03\x00\x00\x00",
    b"\xcf\xfa\xed\xfe\x07\x00\x00\x01",
]
RANDOM_MAGICS = [b"\x1f\x8b\x08\x00", b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0"]


def make_words(rng: random.Random, count: int) -> list[str]:
    """Return `count` pronounceable pseudo-words, so text compresses and tokenises like prose."""
    consonants = "bcdfghklmnprstvz"
    vowels = "aeiou"
    words = []
    for _ in range(count):
        syllables = rng.randint(1, 4)
        words.append("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables)))
    return words


def make_text_pool(rng: random.Random, size: int) -> bytes:
    """Return prose-like lines with an occasional URL, IPv4 address or e-mail address."""
    words = make_words(rng, 5000)
    tlds = ["com", "net", "org", "io", "ru", "cn"]
    lines = []
    total = 0
    while total < size:
        line_words = rng.choices(words, k=rng.randint(4, 16))
        roll = rng.random()
        if roll < 0.03:
            line_words.append(f"https://{rng.choice(words)}.{rng.choice(tlds)}/{rng.choice(words)}")
        elif roll < 0.05:
            address = ".".join(str(rng.randint(1, 254)) for _ in range(4))
            line_words.append(address)
        elif roll < 0.06:
            line_words.append(f"{rng.choice(words)}@{rng.choice(words)}.{rng.choice(tlds)}")
        line = " ".join(line_words) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def make_script_pool(rng: random.Random, size: int) -> bytes:
    """Return shell- and Python-like lines built from a few statement templates."""
    words = make_words(rng, 2000)
    templates = [
        "{a}={b}_{c}\n",
        "if [ -f \"${a}\" ]; then\n    {b} \"${a}\" > /tmp/{c}.log\nfi\n",
        "for {a} in $(ls /var/{b}); do echo \"${a}\"; done\n",
        "def {a}({b}, {c}):\n    return {b}.get('{c}', {n})\n\n",
        "import {a}\nfrom {b} import {c}\n",
        "    {a} = {b}({c}, timeout={n})\n",
        "curl -fsSL https://{a}.example/{b} -o /tmp/{c}\n",
        "# {a} {b} {c}\n",
    ]
    chunks = []
    total = 0
    while total < size:
        chunk = rng.choice(templates).format(
            a=rng.choice(words), b=rng.choice(words), c=rng.choice(words), n=rng.randint(0, 999)
        )
        chunks.append(chunk)
        total += len(chunk)
    return "".join(chunks).encode()[:size]


def make_binary_pool(rng: random.Random, size: int) -> bytes:
    """Return executable-like bytes: code-like runs, zero padding, tables and string sections."""
    printable = string.ascii_letters + string.digits + "_./-"
    parts = []
    total = 0
    while total < size:
        roll = rng.random()
        if roll < 0.45:
            part = rng.randbytes(rng.randint(256, 8 * KIB))
        elif roll < 0.65:
            part = bytes(rng.randint(64, 4 * KIB))
        elif roll < 0.80:
            count = rng.randint(32, 512)
            part = b"".join(rng.randint(0, 4096).to_bytes(4, "little") for _ in range(count))
        else:
            names = [
                "".join(rng.choices(printable, k=rng.randint(4, 24)))
                for _ in range(rng.randint(8, 64))
            ]
            part = "\0".join(names).encode() + b"\0"
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


class ContentPools:
    """Seeded byte pools that file bodies are cut from, one per content kind."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"pools-{seed}")
        self.pools = {
            "text": make_text_pool(rng, TEXT_POOL_SIZE),
            "script": make_script_pool(rng, SCRIPT_POOL_SIZE),
            "binary": make_binary_pool(rng, BINARY_POOL_SIZE),
            "random": rng.randbytes(RANDOM_POOL_SIZE),
        }
        # A doubled pool lets a body wrap around the end with one slice.
        self.doubled = {kind: pool + pool for kind, pool in self.pools.items()}

    def body(self, kind: str, rng: random.Random, size: int) -> bytes:
        """Return `size` bytes of `kind`, cut from the pool at a random offset."""
        pool_size = len(self.pools[kind])
        doubled = self.doubled[kind]
        if size <= pool_size:
            offset = rng.randrange(pool_size)
            return doubled[offset : offset + size]
        repeats = size // pool_size + 1
        return (self.pools[kind] * repeats)[:size]


def file_header(kind: str, seed: int, index: int, rng: random.Random) -> bytes:
    """Return the start of file `index`, which makes its content unique in the corpus."""
    if kind == "text":
        return f"corpus {seed} file {index}\n".encode()
    if kind == "script":
        return f"#!/bin/sh\n# corpus {seed} file {index}\n".encode()
    magics = BINARY_MAGICS if kind == "binary" else RANDOM_MAGICS
    return rng.choice(magics) + seed.to_bytes(8, "little") + index.to_bytes(8, "little")


def pick_kind(rng: random.Random) -> tuple[str, str]:
    """Return a content kind and a file extension drawn with the shares in CONTENT_KINDS."""
    roll = rng.random()
    for name, share, extensions in CONTENT_KINDS:
        if roll < share:
            return name, rng.choice(extensions)
        roll -= share
    name, _, extensions = CONTENT_KINDS[-1]
    return name, rng.choice(extensions)


def pick_mixed_size(rng: random.Random) -> int:
    """Return a file size drawn from MIXED_SIZE_BUCKETS."""
    roll = rng.random()
    bucket = MIXED_SIZE_BUCKETS[-1]
    for candidate in MIXED_SIZE_BUCKETS:
        if roll < candidate[0]:
            bucket = candidate
            break
        roll -= candidate[0]
    _, minimum, maximum = bucket
    return int(minimum * (maximum / minimum) ** rng.random())


def relative_folder(index: int) -> Path:
    """Return the folder of file `index`: FILES_PER_FOLDER files per leaf, two levels deep."""
    leaf = index // FILES_PER_FOLDER
    return Path(f"d{leaf // FOLDERS_PER_PARENT:03d}") / f"d{leaf:04d}"


def write_tree(out: Path, kind: str, files: int, seed: int) -> int:
    """Write the small or mixed corpus under `out` and return its total size in bytes."""
    rng = random.Random(f"{kind}-{seed}")
    pools = ContentPools(seed)
    total = 0
    current_folder = None
    for index in range(files):
        folder = out / relative_folder(index)
        if folder != current_folder:
            folder.mkdir(parents=True, exist_ok=True)
            current_folder = folder
        content_kind, extension = pick_kind(rng)
        if kind == "small":
            size = rng.randint(1 * KIB, 16 * KIB)
        else:
            size = pick_mixed_size(rng)
        header = file_header(content_kind, seed, index, rng)
        body = pools.body(content_kind, rng, max(size - len(header), 0))
        data = header + body
        (folder / f"f{index:06d}{extension}").write_bytes(data)
        total += len(data)
    return total


def write_big(out: Path, files: int, size: int, seed: int) -> int:
    """Write `files` files of `size` bytes each and return their total size in bytes.

    Each buffer is a seeded random block rotated by a random offset and stamped with the
    file and buffer index, so every file and every buffer inside it differs.
    """
    rng = random.Random(f"big-{seed}")
    block = rng.randbytes(min(size, BIG_BUFFER_SIZE))
    out.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        with open(out / f"big{index:02d}.bin", "wb", buffering=0) as stream:
            written = 0
            buffer_index = 0
            while written < size:
                length = min(len(block), size - written)
                offset = rng.randrange(len(block))
                stamp = f"corpus {seed} file {index} buffer {buffer_index}\n".encode()
                rotated = block[offset:] + block[:offset]
                stream.write(stamp + rotated[len(stamp) : length])
                written += length
                buffer_index += 1
    return files * size


def parse_size(text: str) -> int:
    """Parse a byte count with an optional K, M or G suffix (powers of 1024)."""
    suffixes = {"K": KIB, "M": MIB, "G": 1024 * MIB}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in suffixes:
        return int(text[:-1]) * suffixes[text[-1]]
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["small", "mixed", "big"], required=True)
    parser.add_argument("--files", type=int, help="number of files (default: 100000 small, "
                        "10000 mixed, 3 big)")
    parser.add_argument("--size", type=parse_size, default=512 * MIB,
                        help="size of each big file, e.g. 8M or 512M (default: 512M)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder; an existing one is deleted first")
    args = parser.parse_args()

    files = args.files if args.files is not None else DEFAULT_FILES[args.kind]
    if files < 1:
        parser.error(f"--files must be at least 1, got {files}")
    if args.size < 1:
        parser.error(f"--size must be at least 1 byte, got {args.size}")

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)

    started = time.monotonic()
    if args.kind == "big":
        total = write_big(args.out, files, args.size, args.seed)
    else:
        total = write_tree(args.out, args.kind, files, args.seed)

    manifest = {"kind": args.kind, "files": files, "seed": args.seed, "bytes": total}
    if args.kind == "big":
        manifest["size"] = args.size
    (args.out / MANIFEST_NAME).write_text(json.dumps(manifest, sort_keys=True) + "\n")
    print(
        f"wrote {files} {args.kind} files, {total / MIB:.1f} MiB, to {args.out} "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
