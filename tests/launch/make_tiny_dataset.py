"""Writes a Fashion-MNIST-format dataset folder with the first N train and test images of the real one
(or a truncated / corrupt variant), for the command-line tests.

usage: make_tiny_dataset.py SOURCE_DIR OUT_DIR N [ok|truncated|corrupt]"""
import gzip
import os
import struct
import sys


def read(path):
    with gzip.open(path, "rb") as f:
        return f.read()


def subset(data, n):
    magic, count = struct.unpack(">II", data[:8])
    dims = (magic & 0xFF)
    header = 4 + 4 * dims
    shape = struct.unpack(">" + "I" * dims, data[4:header])
    item = 1
    for s in shape[1:]:
        item *= s
    n = min(n, count)
    return data[:4] + struct.pack(">I", n) + data[8:header] + data[header:header + n * item]


def main():
    source, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    variant = sys.argv[4] if len(sys.argv) > 4 else "ok"
    os.makedirs(out, exist_ok=True)
    for split in ("train", "t10k"):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            name = f"{split}-{kind}"
            data = subset(read(os.path.join(source, name + ".gz")), n)
            if split == "train" and kind.startswith("images"):
                if variant == "truncated":
                    data = data[: len(data) // 2]
                elif variant == "corrupt":
                    data = b"\x12\x34\x56\x78" + data[4:]
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
