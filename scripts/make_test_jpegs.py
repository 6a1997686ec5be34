#!/usr/bin/env python3
"""Writes N synthetic 500x375 JPEGs (ImageNet's typical size, quality 90) in two class folders,
for `mst bench --data` where no photo collection is at hand (the GPU machine).
Usage: scripts/make_test_jpegs.py OUT_DIR [N=320]   (needs cjpeg: apt-get install libjpeg-turbo-progs)
"""
import math
import os
import random
import subprocess
import sys

out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 320
random.seed(0)
W, H = 500, 375
for i in range(n):
    cls = "ab"[i % 2]
    os.makedirs(os.path.join(out, "train", cls), exist_ok=True)
    fx, fy, ph = random.uniform(0.005, 0.05), random.uniform(0.005, 0.05), random.uniform(0, 6)
    pixels = bytearray()
    for y in range(H):
        for x in range(W):
            v = math.sin(fx * x + ph) * math.cos(fy * y)
            r = max(0, min(255, int(127 + 100 * v + random.randint(-20, 20))))
            g = int(127 + 80 * math.sin(0.01 * x * y * fx))
            b = max(0, min(255, int(127 - 100 * v)))
            pixels += bytes((r, g, b))
    ppm = b"P6 %d %d 255\n" % (W, H) + bytes(pixels)
    jpeg = subprocess.run(["cjpeg", "-quality", "90"], input=ppm, capture_output=True, check=True).stdout
    with open(os.path.join(out, "train", cls, "img%04d.jpg" % i), "wb") as f:
        f.write(jpeg)
