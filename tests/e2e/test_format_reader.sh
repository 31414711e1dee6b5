#!/bin/bash
# docs/format.md is enough to read a snapshot without savefs: contrib/savefs-snapshot, written
# from it alone, verifies snapshots of the test guest (plain and zstd) read through the mount,
# signature included, and computes the same digest as `savefs accept`; a flipped byte in a
# channel, a zstd frame, an index or the manifest fails it, naming the file. Its page list from
# the indexes equals the one it reads out of the channels' packets, counts the non-zero pages
# QEMU says it sent (query-migrate), and places every page inside its channel's stream. Then
# the same over a snapshot of QEMU 10.0 (the Debian 13 root's), whose channels carry the zero
# pages too, when that root can be made.
source "$SRC_DIR/tests/e2e/lib.sh"
command -v jq >/dev/null && command -v nc >/dev/null || { echo "SKIP: jq and nc are needed"; exit 77; }
READER=$SRC_DIR/contrib/savefs-snapshot
/usr/bin/python3 -c 'import xxhash, zstandard' 2>/dev/null ||
    { echo "SKIP: python3-xxhash and python3-zstandard are needed (contrib/install-deps.sh)"; exit 77; }
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=256 GUEST_MIB=64
# Non-ASCII in the command line: the canonical form escapes it as savefs's JSON encoder does.
# shellcheck disable=SC2034 # read by guest.sh
GUEST_EXTRA_ARGS=(-smbios "type=1,manufacturer=Zürich ☃ 𝄞")
e2e_setup

# QEMU's own count of the pages it sent in the last migration of VM $1: "NORMAL ZERO".
qemu_pages() {
    printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"query-migrate"}' |
        nc -U -q 1 "$QMP/$1.qmp" |
        jq -r 'select(.return.ram) | "\(.return.ram.normal) \(.return.ram.duplicate)"'
}

# The reader's verify of copy $1 must fail, saying $2 (with extra arguments $3...).
must_fail() {
    local dir=$1 want=$2 out
    shift 2
    if out=$("$READER" verify "$@" "$dir" 2>&1); then
        die "verify passed over $dir with $want damaged"
    fi
    grep -q -- "$want" <<<"$out" || die "verify failed without naming $want: $out"
}

# Checks snapshot $2 of VM $1 (read through the mount, savefs serving $3 as its store): verify
# with the store's key, savefs's digest, the pages; expects NORMAL non-zero pages ($4) and, when
# $5 is "zeros", zero pages in the channels: then every page of pc.ram is listed.
check_snapshot() {
    local vm=$1 snap=$2 store=$3 normal=$4 zeros=${5:-} dir=$MNT/$1/snapshots/$2 out digest ours
    log "verify $snap ($(jq -r '.qemu.version + ", compression " + .compression' "$dir/manifest.json"))"
    out=$("$READER" verify --key "$store/.savefs-key" "$dir") || die "verify of $snap failed: $out"
    grep -q 'HMAC-SHA256 ok' <<<"$out" || die "verify did not check the signature: $out"
    grep -q 'pages, [0-9]* sums, as channel-0.idx says' <<<"$out" ||
        die "verify did not check the index's sums: $out"
    ours=$(sed -n 's/^manifest: .*digest //p' <<<"$out")
    digest=$("$SAVEFS_BIN" accept --store "$store" --qmp-dir "$QMP" "$vm" "$snap" |
        sed -n 's/^digest: //p')
    [[ -n $digest && $ours == "$digest" ]] || die "$snap: the reader's digest '$ours' is not savefs's '$digest'"

    "$READER" pages "$dir" >"$T/$snap.pages" || die "pages of $snap failed"
    "$READER" pages --from-stream "$dir" >"$T/$snap.stream" || die "pages --from-stream of $snap failed"
    # The indexes list what the packets hold, but for copies of a page sent again later (QEMU
    # 7.2's race sends a few twice): each page once, at one of its copies, none missing.
    [[ -z $(comm -23 <(sort "$T/$snap.pages") <(sort "$T/$snap.stream")) ]] ||
        die "$snap: the indexes list pages the packets do not hold: $(comm -23 <(sort "$T/$snap.pages") <(sort "$T/$snap.stream") | head -n 5)"
    [[ -z $(cut -f 2,3 "$T/$snap.pages" | sort | uniq -d) ]] ||
        die "$snap: the indexes list a page twice: $(cut -f 2,3 "$T/$snap.pages" | sort | uniq -d | head -n 5)"
    cmp -s <(cut -f 2,3 "$T/$snap.pages" | sort -u) <(cut -f 2,3 "$T/$snap.stream" | sort -u) ||
        die "$snap: the indexes and the packets hold other pages"
    local sizes ram
    ram=$(jq .ram_size "$dir/manifest.json")
    sizes=$(jq -r '.files[] | select(.role == "channel") | "\(.channel) \(.stream_size // .size)"' \
        "$dir/manifest.json")
    # Every page inside its channel's stream, every RAM offset page-aligned and pc.ram's inside
    # the guest's RAM; as many non-zero pages as QEMU sent (less its re-sent ones); the guest's
    # filled memory all there.
    out=$(awk -v ram="$ram" -v normal="$normal" -v mib="$GUEST_MIB" -v zeros="$zeros" '
        function hex(s, i, n) {
            for (i = 3; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            return n
        }
        NR == FNR { size[$1] = $2; next }
        { off = hex($3) }
        off % 4096 { bad = "page at RAM offset " $3 " not aligned"; exit }
        $2 == "pc.ram" && off >= ram { bad = "pc.ram page " $3 " past the RAM"; exit }
        $2 == "pc.ram" { ram_all[$3] = 1 }
        $4 == "zero" { z++; next }
        $4 + 4096 > size[$1] { bad = "page at " $4 " past channel " $1; exit }
        { n++; page[$2 " " $3] = 1; if ($2 == "pc.ram") ram_pages++ }
        END {
            for (p in page) distinct++
            for (o in ram_all) covered++
            # QEMU counts a page it sent twice (7.2 and 10.0 both do, now and then) twice.
            if (bad == "" && (distinct > normal || distinct < normal * 0.99))
                bad = distinct " distinct pages with content listed (" n " in all), QEMU sent " normal
            if (bad == "" && ram_pages < mib * 256)
                bad = ram_pages " pc.ram pages with content, the guest filled " mib * 256
            if (bad == "" && zeros == "zeros" && (!z || covered != ram / 4096))
                bad = covered " pc.ram pages listed (" z + 0 " zero), the RAM has " ram / 4096
            if (bad == "" && zeros != "zeros" && z)
                bad = z " zero pages in the channels"
            if (bad != "") { print bad; exit 1 }
            print n " pages with content, " z + 0 " zero pages in " FILENAME
        }' <(echo "$sizes") "$T/$snap.pages") || die "$snap: $out"
    log "$out"
}

# Saves VM $1 as snapshot $2 with words $3 (keep-running: QEMU's count is read after) and checks
# it; $4 "zeros" where zero pages travel in the channels.
save_and_check() {
    local normal
    echo "$3 name=$2 keep-running" >"$MNT/$1/save" || die "save failed: $(cat "$MNT/$1/status")"
    read -r normal _ < <(qemu_pages "$1")
    [[ -n $normal ]] || die "QEMU does not say how many pages it sent"
    check_snapshot "$1" "$2" "$STORE" "$normal" "${4:-}"
}

log "saving under the host's $(qemu-system-x86_64 --version | head -n1)"
vm_start vm1
savefs_start
save_and_check vm1 plain 2
jq -e '.qemu.argv | any(test("Zürich ☃ 𝄞"))' "$MNT/vm1/snapshots/plain/manifest.json" >/dev/null ||
    die "the manifest lost the non-ASCII argument: $(jq -c .qemu.argv "$MNT/vm1/snapshots/plain/manifest.json")"
save_and_check vm1 packed "3 compress=zstd:1"

log "main's layout: a sum that does not match its part fails verify"
copy=$T/copy-layout
cp -r "$MNT/vm1/snapshots/plain" "$copy"
jq -e '.files[] | select(.role == "main") | .layout.head > 0' "$copy/manifest.json" >/dev/null ||
    die "plain's main has no layout: $(jq -c '.files[0]' "$copy/manifest.json")"
jq 'del(.hmac) | .files |= map(if .role == "main" then .layout.devices_xxh3 = "0123456789abcdef" else . end)' \
    "$MNT/vm1/snapshots/plain/manifest.json" >"$copy/manifest.json"
must_fail "$copy" "main: its layout's devices checksum mismatch"

log "a flipped byte fails verify, naming what it hit"
KEY=$STORE/.savefs-key
for snap in plain packed; do
    copy=$T/copy-$snap
    cp -r "$MNT/vm1/snapshots/$snap" "$copy"
    "$READER" verify --key "$KEY" "$copy" >/dev/null || die "verify fails over a copy of $snap"
    for f in channel-1 channel-0.idx main; do
        size=$(stat -c %s "$copy/$f")
        flip_byte "$copy/$f" $((size / 2))
        must_fail "$copy" "$f" --key "$KEY"
        cp "$MNT/vm1/snapshots/$snap/$f" "$copy/$f"
    done
    # One bit of the command line: only the signature tells.
    off=$(grep -b -o '"tcg"' "$copy/manifest.json" | cut -d: -f1)
    flip_byte "$copy/manifest.json" $((off + 3)) 1
    "$READER" verify "$copy" >/dev/null || die "verify without a key checks what it cannot"
    must_fail "$copy" "fails its HMAC" --key "$KEY"
    cp "$MNT/vm1/snapshots/$snap/manifest.json" "$copy/manifest.json"
    # One digit of a checksum: the file no longer matches it.
    off=$(($(grep -b -o '"xxh3": "' "$copy/manifest.json" | sed -n 2p | cut -d: -f1) + 9))
    digit=$(dd if="$copy/manifest.json" bs=1 skip="$off" count=1 status=none)
    [[ $digit == 0 ]] && digit=1 || digit=0
    printf %s "$digit" | dd of="$copy/manifest.json" bs=1 seek="$off" conv=notrunc status=none
    must_fail "$copy" "channel-0: checksum mismatch"
    cp "$MNT/vm1/snapshots/$snap/manifest.json" "$copy/manifest.json"
    if [[ $snap == plain ]]; then
        # A changed channel whose manifest checksum was made to match (no key given): the index's
        # sums still tell, naming the block.
        flip_byte "$copy/channel-1" 300000
        sum=$(/usr/bin/python3 -c 'import sys, xxhash; print(xxhash.xxh3_64(open(sys.argv[1], "rb").read()).hexdigest())' "$copy/channel-1")
        jq --arg s "$sum" '(.files[] | select(.name == "channel-1") | .xxh3) = $s' \
            "$MNT/vm1/snapshots/$snap/manifest.json" >"$copy/manifest.json"
        must_fail "$copy" "channel-1.idx: the sum of stream bytes 262144 to 524287"
    fi
    rm -r "$copy"
done
kill "$(vm_pid vm1)"

# QEMU 10.0 from the Debian 13 root (a throw-away overlay of the cached one), saved by this
# savefs: the scratch dir and the guest at the same paths inside, so that its QMP socket, serial
# log and pidfile are where the host looks.
if [[ $(id -u) -ne 0 ]] || ! command -v debootstrap >/dev/null; then
    log "PASS (QEMU 10 not tried: needs root and debootstrap)"
    exit 0
fi
# shellcheck source=debroot.sh
source "$SRC_DIR/tests/e2e/debroot.sh"
droot_qemu10
log "saving under the root's $("$T/qemu10" --version | head -n1)"
GUEST_QEMU=$T/qemu10 vm_start vm2
save_and_check vm2 plain10 2 zeros
save_and_check vm2 packed10 "3 compress=zstd:1" zeros
log "PASS"
