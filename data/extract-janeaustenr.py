#!/usr/bin/env python3
"""Rebuild data/corpus.txt from Debian's r-cran-janeaustenr package, without R.

Why this script exists: the build machines reach package registries only, and the
janeaustenr package is where a clean, public-domain novel text lives there. R stores the
package data as a "lazy-load database" (Rdata.rdx index + Rdata.rdb blobs, each blob a
4-byte big-endian length + a zlib stream of an XDR-serialized R object). This file reads
just enough of that format to get the character vectors (one string per line of text).

Usage (from the repository root):
    cd /tmp && apt-get download r-cran-janeaustenr && dpkg-deb -x r-cran-janeaustenr_*.deb jar
    python3 data/extract-janeaustenr.py /tmp/jar/usr/lib/R/site-library/janeaustenr/data > data/corpus.txt
"""
import gzip
import struct
import sys
import zlib

BOOKS = ["prideprejudice", "persuasion"]  # in this order in corpus.txt


class Unserializer:
    """The subset of R's XDR serialization used by vectors, pairlists and symbols."""

    def __init__(self, buf):
        self.buf, self.pos, self.refs = buf, 0, []

    def int(self):
        (v,) = struct.unpack(">i", self.buf[self.pos:self.pos + 4])
        self.pos += 4
        return v

    def top(self):
        assert self.buf[:2] == b"X\n", "not an XDR serialization"
        self.pos = 2
        version = self.int()
        self.int(), self.int()  # R version that wrote it, oldest R that reads it
        if version == 3:
            n = self.int()  # length of the native encoding's name, which we skip
            self.pos += n
        return self.item()

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in (254, 242, 241, 253, 252, 251, 247):  # NULL, environments, markers
            return None
        if kind == 255:  # reference to an earlier symbol
            idx = flags >> 8 or self.int()
            return self.refs[idx - 1]
        if kind == 1:  # symbol
            sym = ("sym", self.item())
            self.refs.append(sym)
            return sym
        if kind == 2:  # pairlist: attributes, tag, car, cdr
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            car, cdr = self.item(), self.item()
            return [(tag, car)] + (cdr if isinstance(cdr, list) else [])
        if kind == 9:  # CHARSXP (a string); flag bit 3 marks UTF-8
            n = self.int()
            if n == -1:
                return None  # NA
            raw = self.buf[self.pos:self.pos + n]
            self.pos += n
            return raw.decode("utf-8" if flags & (1 << 3) else "latin-1")
        if kind in (10, 13):  # logical, integer
            n = self.int()
            value = list(struct.unpack(">%di" % n, self.buf[self.pos:self.pos + 4 * n]))
            self.pos += 4 * n
        elif kind == 14:  # double
            n = self.int()
            value = list(struct.unpack(">%dd" % n, self.buf[self.pos:self.pos + 8 * n]))
            self.pos += 8 * n
        elif kind in (16, 19):  # character vector, list
            value = [self.item() for _ in range(self.int())]
        else:
            raise ValueError("unsupported R object type %d" % kind)
        if has_attr:
            attrs = dict((t[1] if t else None, v) for t, v in self.item())
            return ("attr", value, attrs)
        return value


def main(folder):
    index = Unserializer(gzip.decompress(open(folder + "/Rdata.rdx", "rb").read())).top()
    _, parts, names = index
    _, offsets, attrs = parts[names["names"].index("variables")]
    where = dict(zip(attrs["names"], offsets))
    rdb = open(folder + "/Rdata.rdb", "rb").read()
    books = []
    for name in BOOKS:
        begin, length = where[name]
        blob = rdb[begin:begin + length]
        (size,) = struct.unpack(">I", blob[:4])
        data = zlib.decompress(blob[4:])
        assert len(data) == size
        lines = Unserializer(data).top()
        books.append("\n".join(line or "" for line in lines).rstrip("\n") + "\n")
    sys.stdout.write("\n\n\n\n".join(books))


if __name__ == "__main__":
    main(sys.argv[1])
