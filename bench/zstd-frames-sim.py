#!/usr/bin/env python3
# What grouped zstd frames (frames over runs of G chunks; docs/benchmarks.md, "zstd: levels
# on the idle machine, and frames over runs of chunks") would cost the restores of a long
# history: reads a real store's pack tables and recipes (docs/format.md) and, for frames
# made of G consecutive zstd chunks of each pack (the order a backup writes them), counts the
# raw bytes a restore of generation g would have to decode: each frame it touches decoded
# from its start up to the last member it needs, once per window of W recipe entries (a
# restore plans its reads over a bounded window). 1.00x means no more than today.
#
#   chunkyard snapshots STORE --json > snaps.json
#   python3 bench/zstd-frames-sim.py STORE snaps.json [--window 512] [--frames 1,4,8,16] [--gens 1,10,20,30]
#
# An unencrypted store without the delta feature (recipe version 2); reads only.
import argparse, glob, json, os, struct

ap = argparse.ArgumentParser()
ap.add_argument('store'); ap.add_argument('snapshots')
ap.add_argument('--window', type=int, default=512)
ap.add_argument('--frames', default='1,4,8,16')
ap.add_argument('--gens', default='1,10,20,30')
a = ap.parse_args()

snaps = sorted(json.load(open(a.snapshots)), key=lambda s: s['time'])
CODEC_ZSTD = 2

# Every pack's table (tables/<xx>/<packId>.table: 48-byte entries, then a 40-byte footer).
packs = {}
for f in glob.glob(os.path.join(a.store, 'tables', '*', '*')):
    b = open(f, 'rb').read()
    n = struct.unpack_from('<I', b, len(b) - 40)[0]
    ents = []
    for i in range(n):
        off, sl, rl = struct.unpack_from('<III', b, i * 48 + 32)
        ents.append((off, rl, b[i * 48 + 44]))
    packs[os.path.basename(f).split('.')[0]] = sorted(ents)

def frames_of(g):
    """(packId, offset) -> (frame, member index); raw lengths per frame member."""
    where, raws = {}, {}
    for pid, ents in packs.items():
        k, fi, fid = 0, 0, None
        for off, rl, codec in ents:
            if codec != CODEC_ZSTD:
                fid1 = (pid, 'alone', off)
                where[(pid, off)] = (fid1, 0); raws[fid1] = [rl]
                continue
            if k == 0:
                fid = (pid, fi); fi += 1; raws[fid] = []
            where[(pid, off)] = (fid, k); raws[fid].append(rl)
            k = (k + 1) % g
    return where, raws

def recipe_entries(snap):
    n = snap['chunks']
    b = open(glob.glob(os.path.join(a.store, 'recipes', f"{snap['id']}-*.recipe"))[0], 'rb').read()
    ptab = 16 + 52 * n + 40 * ((n + 4095) // 4096)
    pids = [b[ptab + 16 * i: ptab + 16 * i + 16].hex() for i in range((len(b) - 32 - ptab) // 16)]
    for i in range(n):
        ref, off, sl, rl = struct.unpack_from('<IIII', b, 16 + 52 * i + 32)
        yield pids[ref], off, rl

for g in [int(x) for x in a.frames.split(',')]:
    where, raws = frames_of(g)
    out = []
    for gen in [int(x) for x in a.gens.split(',')]:
        ents = list(recipe_entries(snaps[gen - 1]))
        raw = sum(rl for _, _, rl in ents)
        decoded = 0
        for s in range(0, len(ents), a.window):
            need = {}
            for pid, off, _ in ents[s:s + a.window]:
                fid, k = where[(pid, off)]
                need[fid] = max(need.get(fid, -1), k)
            decoded += sum(sum(raws[f][:k + 1]) for f, k in need.items())
        out.append(f'gen {gen}: {decoded / raw:.2f}x')
    print(f'frames of {g:2}: ' + ', '.join(out))
