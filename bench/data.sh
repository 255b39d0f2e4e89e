#!/usr/bin/env bash
# Builds the side-by-side benchmark datasets (bench/README.md). Real data nobody here wrote:
# npm releases as published on the registry, and this machine's own /usr.
#
#   bench/data.sh [--small] [--only npm,image,usr-share] [DIR]     (DIR default /tmp/chunkyard-bench-data)
#
#   DIR/npm-gens/typescript/NN-typescript-X.Y.Z.tar   10 releases, 5.0 .. 5.9 (npm pack + gunzip)
#   DIR/npm-gens/prettier/NN-prettier-X.Y.Z.tar       10 releases, 3.0 .. 3.9
#   DIR/image/gen{1,2,3}.img        2 GiB ext4 images, ~1.4 GiB of /usr, then two rounds of edits
#   DIR/image-small/gen{1,2,3}.img  (--small) 256 MiB images, ~170 MiB of /usr, same edits scaled
#   DIR/usr-share.tar               tar of /usr/share (capped at 1.5 GiB)
#   DIR/dumps/gen-NN.sql            10 nightly "database dumps" of 256 MiB with ~1,000 scattered
#                                   row edits each (bench/dump-series.mjs, seed 1)
#
# --small builds npm + image-small only (a quick run); the default builds npm + image +
# usr-share + dumps.
# Idempotent: an artifact that exists is skipped; each is written under a temporary name
# and renamed when complete. Needs: npm (registry access), mke2fs/debugfs (e2fsprogs), tar.
# No loop mount is used: image edits go through `debugfs -w`.
set -euo pipefail

SMALL=0
ONLY=""
DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --small) SMALL=1 ;;
    --only) ONLY="$2"; shift ;;
    --only=*) ONLY="${1#--only=}" ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "data.sh: unknown option $1" >&2; exit 2 ;;
    *) DIR="$1" ;;
  esac
  shift
done
DIR="${DIR:-/tmp/chunkyard-bench-data}"
if [ -z "$ONLY" ]; then
  if [ "$SMALL" = 1 ]; then ONLY="npm,image"; else ONLY="npm,image,usr-share,dumps"; fi
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"
log() { printf '[data.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------- npm generations
npm_gens() { # npm_gens NAME VERSION...
  local name="$1"; shift
  local out="$DIR/npm-gens/$name" i=0 v tgz tar
  mkdir -p "$out"
  for v in "$@"; do
    i=$((i + 1))
    tar="$out/$(printf '%02d' "$i")-$name-$v.tar"
    [ -s "$tar" ] && continue
    local tmp; tmp="$(mktemp -d "$out/.pack.XXXXXX")"
    log "npm pack $name@$v"
    (cd "$tmp" && npm pack "$name@$v" --loglevel=error --pack-destination "$tmp" >/dev/null)
    tgz="$(ls "$tmp"/*.tgz)"
    gunzip -c "$tgz" > "$tmp/out.tar"
    mv "$tmp/out.tar" "$tar"
    rm -rf "$tmp"
  done
}

if want npm; then
  npm_gens typescript 5.0.4 5.1.6 5.2.2 5.3.3 5.4.5 5.5.4 5.6.3 5.7.3 5.8.3 5.9.3
  npm_gens prettier 3.0.3 3.1.1 3.2.5 3.3.3 3.4.2 3.5.3 3.6.2 3.7.4 3.8.3 3.9.3
fi

# ---------------------------------------------------------------- file lists of /usr
# capped_list CAP_BYTES SRC... : regular files and symlinks under the given /usr-relative
# directories, in that order (sorted inside each), without repeats, until CAP_BYTES (counted in
# 4 KiB blocks, as they will take in the image) is reached.
# Prints "size<TAB>path" lines (path relative to /usr).
capped_list() {
  local cap="$1"; shift
  local d
  for d in "$@"; do
    [ -e "/usr/$d" ] || continue
    (cd /usr && find "$d" \( -type f -o -type l \) -printf '%s\t%p\n' 2>/dev/null | LC_ALL=C sort -t$'\t' -k2,2)
  done | awk -F'\t' -v cap="$cap" '!seen[$2]++ { b = int(($1 + 4095) / 4096) * 4096; if (tot + b > cap) next; tot += b; print }'
}

# ---------------------------------------------------------------- ext4 image generations
# Edits between generations, modelled on a package upgrade: ~2% of the files removed, ~1%
# changed (a short insertion that shifts the rest of the file, an in-place overwrite of 4 KiB,
# or an append, in turn), and a new directory tree added. debugfs frees the blocks of removed
# files without zeroing them, as the kernel does. Selection is by position in the sorted file
# list, so a machine with the same /usr gets the same images.
mutate() { # mutate SRC OUT SEQ -> OUT is SRC with an edit of kind SEQ%3 (deterministic)
  local src="$1" out="$2" seq="$3" size off mark
  size=$(stat -c %s "$src")
  mark="$(printf 'chunkyard-bench edit %d of %s\n' "$seq" "$src")"
  off=$(( (seq * 2654435761) % (size + 1) ))
  case $((seq % 3)) in
    0) { head -c "$off" "$src"; printf '%s' "$mark$mark$mark"; tail -c +"$((off + 1))" "$src"; } > "$out" ;;
    1) cp "$src" "$out"
       if [ "$size" -gt 4096 ]; then
         off=$(( off > size - 4096 ? size - 4096 : off ))
         { yes "$mark" || true; } | head -c 4096 | dd of="$out" bs=4096 seek="$off" oflag=seek_bytes conv=notrunc status=none
       else printf '%s' "$mark" >> "$out"; fi ;;
    2) { cat "$src"; { yes "$mark" || true; } | head -c 8192; } > "$out" ;;
  esac
}

# next_gen IMG_IN IMG_OUT STATE_IN STATE_OUT GEN ADD_SRC ADD_CAP
# STATE files list "path<TAB>source" of regular files in the image (source = the file whose
# bytes it holds now: /usr/... or a modified copy under .state/mods).
next_gen() {
  local in="$1" out="$2" sin="$3" sout="$4" gen="$5" addsrc="$6" addcap="$7"
  local st; st="$(dirname "$sin")"
  local cmds="$st/gen$gen.debugfs" mods="$st/mods/gen$gen"
  rm -rf "$mods"; mkdir -p "$mods"
  : > "$cmds"
  # removals: every 50th file (offset by generation)
  awk -F'\t' -v g="$gen" 'NR % 50 == g { print $1 }' "$sin" > "$st/gen$gen.removed"
  awk '{ print "rm \"/" $0 "\"" }' "$st/gen$gen.removed" >> "$cmds"
  # changes: every 100th file (an offset the removals never use)
  awk -F'\t' -v g="$gen" 'NR % 100 == 25 + g' "$sin" > "$st/gen$gen.changed"
  local n=0 path src dir base
  : > "$st/gen$gen.newsrc"
  while IFS=$'\t' read -r path src; do
    n=$((n + 1))
    mutate "$src" "$mods/$n" "$((gen * 100000 + n))"
    dir="$(dirname "/$path")"; base="$(basename "$path")"
    printf 'rm "/%s"\ncd "%s"\nwrite "%s" "%s"\ncd /\n' "$path" "$dir" "$mods/$n" "$base" >> "$cmds"
    printf '%s\t%s\n' "$path" "$mods/$n" >> "$st/gen$gen.newsrc"
  done < "$st/gen$gen.changed"
  # additions: a new tree /added-genN/ from another part of /usr
  capped_list "$addcap" $addsrc | awk -F'\t' '{ print $2 }' > "$st/gen$gen.addlist"
  local added=0
  {
    printf 'mkdir "/added-gen%s"\n' "$gen"
    awk -v g="$gen" '{ n = split($0, p, "/"); d = "/added-gen" g; for (i = 1; i < n; i++) { d = d "/" p[i]; if (!(d in made)) { made[d] = 1; print "mkdir \"" d "\"" } } }' "$st/gen$gen.addlist"
    while read -r path; do
      [ -f "/usr/$path" ] && [ ! -L "/usr/$path" ] || continue
      printf 'cd "/added-gen%s/%s"\nwrite "/usr/%s" "%s"\ncd /\n' "$gen" "$(dirname "$path")" "$path" "$(basename "$path")"
    done < "$st/gen$gen.addlist"
  } >> "$cmds"
  log "gen$gen: $(wc -l < "$st/gen$gen.removed") removed, $(wc -l < "$st/gen$gen.changed") changed, $(wc -l < "$st/gen$gen.addlist") added"
  cp --sparse=always "$in" "$out.tmp"
  debugfs -w -f "$cmds" "$out.tmp" > "$st/gen$gen.debugfs.log" 2>&1
  if grep -Eiq 'no free|could not allocate|corrupt' "$st/gen$gen.debugfs.log"; then
    log "debugfs reported errors, see $st/gen$gen.debugfs.log"; exit 1
  fi
  e2fsck -fn "$out.tmp" > "$st/gen$gen.fsck.log" 2>&1 || { log "e2fsck found problems in gen$gen, see $st/gen$gen.fsck.log"; exit 1; }
  # next state: drop removed, point changed at their new bytes, add the new tree
  awk -F'\t' 'FILENAME == ARGV[1] { rm[$0] = 1; next } FILENAME == ARGV[2] { ch[$1] = $2; next }
              !($1 in rm) { print $1 "\t" (($1 in ch) ? ch[$1] : $2) }' \
    "$st/gen$gen.removed" "$st/gen$gen.newsrc" "$sin" > "$sout.tmp"
  while read -r path; do
    [ -f "/usr/$path" ] && [ ! -L "/usr/$path" ] && printf 'added-gen%s/%s\t/usr/%s\n' "$gen" "$path" "$path"
  done < "$st/gen$gen.addlist" >> "$sout.tmp"
  mv "$sout.tmp" "$sout"
  mv "$out.tmp" "$out"
}

image_set() { # image_set OUTDIR IMG_SIZE BYTES_PER_INODE CONTENT_CAP ADD_CAP SRC...
  local out="$1" size="$2" ipb="$3" cap="$4" addcap="$5"; shift 5
  local st="$out/.state"
  mkdir -p "$st"
  if [ ! -s "$out/gen1.img" ] || [ ! -s "$st/gen1.state" ]; then
    log "gen1: listing /usr ($*), cap $cap bytes"
    capped_list "$cap" "$@" > "$st/gen1.list"
    local stage="$out/.stage"
    rm -rf "$stage"; mkdir -p "$stage"
    awk -F'\t' '{ print $2 }' "$st/gen1.list" > "$st/gen1.paths"
    tar -C /usr -cf - --no-recursion -T "$st/gen1.paths" | tar -C "$stage" -xpf -
    log "gen1: mke2fs -t ext4 -d ($(du -sh "$stage" | cut -f1)) $size"
    rm -f "$out/gen1.img.tmp"
    E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 -b 4096 -i "$ipb" -I 256 \
      -U 6c7a3a2e-0b1e-4c1d-9f00-c4a7c0ffee01 -E hash_seed=6c7a3a2e-0b1e-4c1d-9f00-c4a7c0ffee02 \
      -L chunkyard-gen1 -d "$stage" "$out/gen1.img.tmp" "$size"
    e2fsck -fn "$out/gen1.img.tmp" > "$st/gen1.fsck.log" 2>&1 || { log "e2fsck found problems in gen1"; exit 1; }
    rm -rf "$stage"
    # regular files only (symlinks are not edited)
    while IFS= read -r p; do
      [ -f "/usr/$p" ] && [ ! -L "/usr/$p" ] && printf '%s\t/usr/%s\n' "$p" "$p"
    done < "$st/gen1.paths" > "$st/gen1.state"
    mv "$out/gen1.img.tmp" "$out/gen1.img"
    rm -f "$out/gen2.img" "$out/gen3.img"   # later generations derive from this gen1
  fi
  if [ ! -s "$out/gen2.img" ]; then
    next_gen "$out/gen1.img" "$out/gen2.img" "$st/gen1.state" "$st/gen2.state" 2 "$ADD2" "$addcap"
    rm -f "$out/gen3.img"
  fi
  if [ ! -s "$out/gen3.img" ]; then
    next_gen "$out/gen2.img" "$out/gen3.img" "$st/gen2.state" "$st/gen3.state" 3 "$ADD3" "$addcap"
  fi
}

if want image; then
  command -v debugfs >/dev/null && command -v mke2fs >/dev/null || { echo "data.sh: needs e2fsprogs (mke2fs, debugfs)" >&2; exit 1; }
  PY="$(cd /usr && ls -d lib/python3.* 2>/dev/null | head -1 || true)"
  ADD2="${PY:-lib/python3} include"
  ADD3="lib/gcc include/linux bin"
  if [ "$SMALL" = 1 ]; then
    image_set "$DIR/image-small" 256M 4096 $((170 * 1024 * 1024)) $((8 * 1024 * 1024)) \
      share/man share/doc share/locale bin lib/x86_64-linux-gnu
  else
    image_set "$DIR/image" 2G 8192 $((1400 * 1024 * 1024)) $((64 * 1024 * 1024)) \
      share lib/x86_64-linux-gnu lib/jvm bin lib/gcc lib
  fi
fi

# ---------------------------------------------------------------- tar of /usr/share
if want usr-share && [ ! -s "$DIR/usr-share.tar" ]; then
  log "usr-share.tar (capped at 1.5 GiB)"
  capped_list $((1536 * 1024 * 1024)) share | awk -F'\t' '{ print $2 }' > "$DIR/.usr-share.paths"
  tar -C /usr --no-recursion --owner=0 --group=0 --numeric-owner --mtime=@1700000000 \
    -cf "$DIR/usr-share.tar.tmp" -T "$DIR/.usr-share.paths"
  mv "$DIR/usr-share.tar.tmp" "$DIR/usr-share.tar"
  rm -f "$DIR/.usr-share.paths"
fi

# ---------------------------------------------------------------- database dumps
# Complete or rebuilt: the series is deterministic, and a partial one (interrupted) is redone.
if want dumps && [ ! -s "$DIR/dumps/gen-10.sql" ]; then
  log "dumps: 10 generations of 256 MiB (bench/dump-series.mjs)"
  rm -rf "$DIR/dumps.tmp"
  node "$(dirname "$0")/dump-series.mjs" --out "$DIR/dumps.tmp" --generations 10 --size-mib 256 --seed 1 >&2
  rm -rf "$DIR/dumps"; mv "$DIR/dumps.tmp" "$DIR/dumps"
fi

log "done: $DIR"
find "$DIR" -path '*/.*' -prune -o -type f -printf '%10s  %p\n' | sort -k2 >&2
