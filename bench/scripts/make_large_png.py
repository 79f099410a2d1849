#!/usr/bin/env python3
"""Writes a 40-megapixel PNG (8,000 x 5,000 RGB, about 0.5 MB) to the path given: what
bench/scripts/large_images.sh uploads. Standard library only."""
import struct
import sys
import zlib

w, h = 8000, 5000
def chunk(t, d):
    c = struct.pack('>I', len(d)) + t + d
    return c + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
row_base = bytes((x * 7) & 0xff for x in range(w * 3))
raw = bytearray()
for y in range(h):
    raw += b'\x00' + bytes(((b + y) & 0xff) for b in row_base[:60]) + row_base[60:]
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(bytes(raw), 9)) + chunk(b'IEND', b'')
open(sys.argv[1], 'wb').write(png)
print(len(png))
