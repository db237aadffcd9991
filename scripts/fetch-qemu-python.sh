#!/bin/sh
# Fetch QEMU 7.2's own Python tooling (python/qemu: qemu.machine, qemu.qmp;
# scripts/qmp/qmp-shell) from Debian's source package for qemu, for the tests
# that start migvm with it. Nothing is committed or installed system-wide:
# a private apt configuration (deb-src lines, package lists, cache) and the
# extracted files live under DEST.
#
#   scripts/fetch-qemu-python.sh DEST      e.g. build/qemu-python
#
# Prints the extracted tree (DEST/qemu-7.2.N) on success. Exit 0 when the
# tree is there (already, or now), 1 with the reason on stderr otherwise.
set -u
DEST=${1:?usage: fetch-qemu-python.sh DEST}
mkdir -p "$DEST" || exit 1
DEST=$(cd "$DEST" && pwd)

found() {
    for d in "$DEST"/qemu-7.2*; do
        if [ -f "$d/python/qemu/machine/machine.py" ] && [ -f "$d/scripts/qmp/qmp-shell" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}
found && exit 0

APT="$DEST/apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$DEST/dl" || exit 1
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
cat > "$APT/sources.list" <<EOS
deb-src [signed-by=$KEYRING] http://deb.debian.org/debian bookworm main
deb-src [signed-by=$KEYRING] http://deb.debian.org/debian bookworm-updates main
deb-src [signed-by=$KEYRING] http://deb.debian.org/debian-security bookworm-security main
EOS
set -- -o Dir::Etc::SourceList="$APT/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
       -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" -o Debug::NoLocking=1 \
       -o APT::Sandbox::User=root -qq
if ! apt-get "$@" update >"$APT/update.log" 2>&1; then
    echo "fetch-qemu-python: apt-get update (deb-src) failed: $(tail -1 "$APT/update.log")" >&2
    exit 1
fi
if ! (cd "$DEST/dl" && apt-get "$@" source --download-only qemu >"$APT/source.log" 2>&1); then
    echo "fetch-qemu-python: apt-get source qemu failed: $(tail -1 "$APT/source.log")" >&2
    exit 1
fi
orig=$(ls "$DEST"/dl/qemu_7.2*.orig.tar.* 2>/dev/null | head -1)
if [ -z "$orig" ]; then
    echo "fetch-qemu-python: no qemu 7.2 source tarball in Debian's source package ($(ls "$DEST/dl" | tr '\n' ' '))" >&2
    exit 1
fi
if ! tar -xf "$orig" -C "$DEST" --wildcards '*/python/qemu/*' '*/scripts/qmp/*' 2>"$APT/tar.log"; then
    echo "fetch-qemu-python: cannot extract $orig: $(tail -1 "$APT/tar.log")" >&2
    exit 1
fi
rm -f "$DEST"/dl/*.orig.tar.*
found && exit 0
echo "fetch-qemu-python: $orig has no python/qemu or scripts/qmp/qmp-shell" >&2
exit 1
