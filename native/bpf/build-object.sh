#!/bin/sh
# Compiles the fast path's BPF programs (native/bpf/fastpath.bpf.c) into an
# object the agent loads: clang's BPF target, libbpf's headers. Run by
# node-gyp (binding.gyp); the object is never committed.
# usage: build-object.sh SOURCE OUTPUT
set -eu
src=$1
out=$2
# target bpf does not search the multiarch include directory, where <asm/types.h> lives
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
mkdir -p "$(dirname "$out")"
exec clang -O2 -g -Wall -Werror -target bpf -I/usr/include/"$multiarch" -I"$(dirname "$src")" -c "$src" -o "$out"
