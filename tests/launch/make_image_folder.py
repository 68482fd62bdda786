"""Writes an image-folder dataset made of real Fashion-MNIST images, for the command-line tests:
OUT/train/<class>/<i>.png (grey and RGB files alternating, 10 classes) and a val split as a file
list, OUT/val.txt naming OUT/valimages/<i>.png with class names. PNG written with the standard
library alone (zlib), so the tests need no imaging package.

usage: make_image_folder.py SOURCE_DIR OUT_DIR N_TRAIN N_VAL"""
import gzip
import os
import struct
import sys
import zlib

CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def idx(path):
    with gzip.open(path, "rb") as f:
        return f.read()


def png(width, height, rows, channels):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    colour = 0 if channels == 1 else 2
    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write(path, pixels, i):
    rows = [pixels[28 * r:28 * (r + 1)] for r in range(28)]
    if i % 2:  # RGB, tinted by the index so the colour path is exercised
        rows = [bytes(v for p in row for v in (p, (p * 3) // 4, (p + i) % 256)) for row in rows]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(png(28, 28, rows, 3 if i % 2 else 1))


def main():
    source, out, n_train, n_val = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    for split, prefix, n in (("train", "train", n_train), ("val", "t10k", n_val)):
        images = idx(os.path.join(source, prefix + "-images-idx3-ubyte.gz"))[16:]
        labels = idx(os.path.join(source, prefix + "-labels-idx1-ubyte.gz"))[8:]
        lines = []
        for i in range(n):
            name = CLASSES[labels[i]]
            pixels = images[784 * i:784 * (i + 1)]
            if split == "train":
                write(os.path.join(out, "train", name, "%05d.png" % i), pixels, i)
            else:
                write(os.path.join(out, "valimages", "%05d.png" % i), pixels, i)
                lines.append("valimages/%05d.png %s\n" % (i, name))
        if lines:
            with open(os.path.join(out, "val.txt"), "w") as f:
                f.writelines(lines)


if __name__ == "__main__":
    main()
