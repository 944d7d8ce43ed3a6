#!/usr/bin/env bash
# Writes are atomic: assemble killed with SIGKILL at every write, rename,
# fsync and link it makes (strace's fault injection stops it at exactly
# that syscall, so no timing is involved) leaves the old output or the new
# one, never a mix, and a blob cache whose every blob matches its digest;
# the next build cleans up after the dead one and gives the serial result.
# Two builds sharing a cache and an output directory both finish, with the
# same result as serial builds, and the index keeps both tags.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"
command -v strace >/dev/null || fail "strace is needed (apt-get install strace)"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
registry_start reg
registry_seed reg "oci:$B:3.8" lambda/python:3.8
BASE=$reg_HOST/lambda/python:3.8
make_code "$T/code"
mkdir -p "$T/code2"
cp "$T/code/example.py" "$T/code2/"
echo "# other" >>"$T/code2/example.py"

build() { # OUT TAG CODE CACHE [strace args...]: prints the digest
	local out=$1 tag=$2 code=$3 cache=$4
	shift 4
	XDG_CACHE_HOME=$cache "$@" $OCILAMBDA assemble --base "$BASE" --conda-prefix "$P" \
		--code "$code" --handler example.lambda_handler --output "oci:$out:$tag"
}
# verify_layout DIR: every blob matches its name; index -> manifests ->
# config and layers all present. Prints "tag=digest" for each tag.
verify_layout() {
	"$PY" - "$1" <<'PYEOF'
import hashlib, json, os, sys
d = sys.argv[1]
blobs = os.path.join(d, "blobs", "sha256")
for name in os.listdir(blobs):
    if name.startswith("."):
        sys.exit("temporary blob left in the output: " + name)
    h = hashlib.sha256(open(os.path.join(blobs, name), "rb").read()).hexdigest()
    if h != name:
        sys.exit("blob %s holds %s" % (name, h))
def blob(dg):
    p = os.path.join(blobs, dg.split(":")[1])
    if not os.path.exists(p):
        sys.exit("missing blob " + dg)
    return p
idx = json.load(open(os.path.join(d, "index.json")))
for m in sorted(idx["manifests"], key=lambda m: m["annotations"]["org.opencontainers.image.ref.name"]):
    man = json.load(open(blob(m["digest"])))
    for l in [man["config"]] + man["layers"]:
        if os.path.getsize(blob(l["digest"])) != l["size"]:
            sys.exit("size of " + l["digest"])
    print("%s=%s" % (m["annotations"]["org.opencontainers.image.ref.name"], m["digest"]))
PYEOF
}
verify_cache() { # every cached blob matches its digest (temporaries aside)
	local f
	[ -d "$1/ocilambda/blobs/sha256" ] || return 0
	for f in "$1"/ocilambda/blobs/sha256/*; do
		[ -e "$f" ] || continue
		[ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "cache blob $f is corrupt"
	done
}

# The serial results.
old=$(build "$T/serial" old "$T/code2" "$T/c0")
new=$(build "$T/serial" latest "$T/code" "$T/c0")
[ "$old" != "$new" ] || fail "the two builds should differ"
ok "serial builds: old=$old latest=$new"

# How many of each syscall one build makes (fresh cache, fresh output).
build "$T/probe" latest "$T/code" "$T/cprobe" strace -f -c -o "$T/count" -e trace=write,rename,fsync,link >/dev/null 2>&1
count() { awk -v s="$1" '$NF == s {print $4}' "$T/count"; }
for sc in write rename fsync link; do
	[ -n "$(count $sc)" ] || fail "no $sc calls counted: $(cat "$T/count")"
done

# kill_at SYSCALL N SCENARIO: SIGKILL at the Nth SYSCALL of a build of tag
# latest into an output that is absent (fresh) or holds tag old (existing),
# with a cache that starts empty (fresh) or warm (existing).
kills=0
kill_at() {
	local sc=$1 n=$2 scen=$3 rc=0 state
	rm -rf "$T/out" "$T/cache"
	if [ "$scen" = existing ]; then
		build "$T/out" old "$T/code2" "$T/cache" >/dev/null
	fi
	build "$T/out" latest "$T/code" "$T/cache" strace -f -o /dev/null -qq \
		-e trace="$sc" -e inject="$sc":signal=KILL:when="$n" >/dev/null 2>"$T/kill.err" || rc=$?
	[ "$rc" = 0 ] || [ "$rc" = 137 ] || fail "$sc #$n ($scen): exit $rc: $(cat "$T/kill.err")"
	verify_cache "$T/cache"
	if [ -e "$T/out" ]; then
		state=$(verify_layout "$T/out" | tr '\n' ' ') || fail "$sc #$n ($scen): output broken: $state"
	fi
	case "$scen:${state:-none}" in
	"fresh:none" | "fresh:latest=$new " | "existing:old=$old " | "existing:latest=$new old=$old ") ;;
	*) fail "$sc #$n ($scen): output is neither the old nor the new one: ${state:-none}" ;;
	esac
	[ "$rc" = 0 ] || kills=$((kills + 1))
	# the next build finishes, cleans up after the dead one, and agrees
	d=$(build "$T/out" latest "$T/code" "$T/cache") || fail "$sc #$n ($scen): rebuild failed"
	[ "$d" = "$new" ] || fail "$sc #$n ($scen): rebuild gave $d"
	state=$(verify_layout "$T/out" | tr '\n' ' ')
	case "$scen:$state" in
	"fresh:latest=$new " | "existing:latest=$new old=$old ") ;;
	*) fail "$sc #$n ($scen): after the rebuild: $state" ;;
	esac
	verify_cache "$T/cache"
	no_litter "$T"
	[ -z "$(find "$T/cache" -name '.tmp-*')" ] || fail "$sc #$n ($scen): temporaries left in the cache"
}
for scen in fresh existing; do
	for sc in write rename fsync link; do
		total=$(count $sc)
		# every call up to 12, then a dozen spread over the rest
		step=$(((total - 12) / 12 + 1))
		for n in $(seq 1 12) $(seq 13 "$step" "$((total + 1))"); do
			[ "$n" -le "$((total + 1))" ] && kill_at $sc "$n" $scen
		done
	done
	ok "killed at every write/rename/fsync/link point ($scen output and cache; $kills kills so far): old or new output, cache verifies, next build cleans up"
done
[ "$kills" -gt 40 ] || fail "only $kills builds were actually killed"

# Pushes: SIGKILL at every sendto of a push over an existing tag (its new
# layers uploaded for the first time) leaves the tag on the old image or the
# new one, each complete (skopeo copies it, verifying every blob): the
# manifest goes last.
push() { # TAG REPO [strace...]
	local tag=$1 repo=$2
	shift 2
	"$@" $OCILAMBDA push --quiet "oci:$T/serial:$tag" "docker://$reg_HOST/$repo:v1" >/dev/null 2>&1
}
tag_digest() {
	skopeo inspect --tls-verify=false --raw "docker://$reg_HOST/$1:v1" | sha256sum | sed 's/^/sha256:/; s/ .*//'
}
push old probe || fail "push old"
push latest probe strace -f -o "$T/pcount" -e trace=sendto || fail "push latest"
[ "$(tag_digest probe)" = "$new" ] || fail "push: the registry keeps the layout's manifest bytes"
# strace's when= counts each thread's calls: the transfers' sends are all made by one thread
# (the network loop, registry/net.h; the others only wake it), so the most any thread made
# is how many kill points there are
sends=$(awk '/sendto\(/ { n[$1]++ } END { m = 0; for (t in n) if (n[t] > m) m = n[t]; if (m) print m }' "$T/pcount")
[ -n "$sends" ] || fail "no sendto counted: $(cat "$T/pcount")"
pkills=0
for n in $(seq 1 "$((sends + 1))"); do
	push old "k$n" || fail "push old to k$n"
	rc=0
	push latest "k$n" strace -f -o /dev/null -qq -e trace=sendto \
		-e inject=sendto:signal=KILL:when="$n" || rc=$?
	[ "$rc" = 0 ] || [ "$rc" = 137 ] || fail "push killed at sendto #$n: exit $rc"
	[ "$rc" = 0 ] || pkills=$((pkills + 1))
	d=$(tag_digest "k$n")
	[ "$d" = "$old" ] || [ "$d" = "$new" ] || fail "push killed at sendto #$n: tag on $d"
	rm -rf "$T/copy"
	skopeo copy -q --src-tls-verify=false "docker://$reg_HOST/k$n:v1" "oci:$T/copy:x" ||
		fail "push killed at sendto #$n: the tagged image is incomplete"
done
[ "$pkills" -ge "$sends" ] || fail "only $pkills of $sends pushes were killed"
ok "push killed at each of its $sends sendto calls: the tag names the old or the new image, complete"

# docker-archive outputs and the scratch directories of check and inspect:
# what a SIGKILL leaves behind is swept by the next run, and only that (a
# stranger's file of a similar name stays).
mkdir -p "$T/arch" "$T/tmp"
touch "$T/arch/img.tar.tmp-old" "$T/arch/other.tar.tmp-ABCDEF" "$T/tmp/ocilambda-check.notes"
archive() { # [strace...]
	"$@" $OCILAMBDA assemble --quiet --base "oci:$B:3.8" --conda-prefix "$P" \
		--code "$T/code" --handler example.lambda_handler --output "docker-archive:$T/arch/img.tar" \
		>/dev/null 2>&1
}
# (counted on a warm cache, as the killed builds have it: a cold one also
# writes the base layers' indexes and bytecode facts, which would put the
# later kill points past the archive's rename)
archive || fail "docker-archive build"
archive strace -f -c -o "$T/acount" -e trace=write || fail "docker-archive build"
awrites=$(awk '$NF == "write" {print $4}' "$T/acount")
akills=0
for n in 1 2 3 5 8 $((awrites / 2)) $((awrites - 2)); do
	rm -f "$T/arch/img.tar"
	rc=0
	archive strace -f -o /dev/null -qq -e trace=write -e inject=write:signal=KILL:when="$n" || rc=$?
	[ "$rc" = 0 ] || [ "$rc" = 137 ] || fail "docker-archive killed at write #$n: exit $rc"
	[ "$rc" = 0 ] || akills=$((akills + 1))
	[ "$rc" = 0 ] || [ ! -e "$T/arch/img.tar" ] || fail "docker-archive killed at write #$n: a half-written img.tar"
	archive || fail "docker-archive rebuild after write #$n"
	left=$(cd "$T/arch" && ls -A | sort | tr '\n' ' ')
	[ "$left" = "img.tar img.tar.tmp-old other.tar.tmp-ABCDEF " ] ||
		fail "docker-archive killed at write #$n, then rebuilt: $left"
done
[ "$akills" -ge 5 ] || fail "only $akills docker-archive builds were killed"
skopeo inspect "docker-archive:$T/arch/img.tar" >/dev/null || fail "skopeo reads the rebuilt archive"
ok "docker-archive killed at $akills writes: no half archive; the next build sweeps its temporary, and no other file"

for cmd in check inspect; do
	rc=0
	TMPDIR=$T/tmp strace -f -o /dev/null -qq -e trace=write -e inject=write:signal=KILL:when=3 \
		$OCILAMBDA $cmd "docker-archive:$T/arch/img.tar" >/dev/null 2>&1 || rc=$?
	[ "$rc" = 137 ] || fail "$cmd was not killed by the injected SIGKILL: exit $rc"
	[ -n "$(find "$T/tmp" -mindepth 1 -maxdepth 1 -name "ocilambda-*.??????")" ] ||
		fail "$cmd killed early left no scratch directory: the test kills too late"
	# the archive passes check (assemble checked it); a crash or any other
	# status is a failure
	TMPDIR=$T/tmp $OCILAMBDA $cmd "docker-archive:$T/arch/img.tar" >"$T/$cmd.out" 2>"$T/$cmd.err" ||
		fail "$cmd after the kill: $(cat "$T/$cmd.err")"
	left=$(cd "$T/tmp" && ls -A | tr '\n' ' ')
	[ "$left" = "ocilambda-check.notes " ] || fail "$cmd killed, then run again: $TMPDIR holds $left"
done
ok "check and inspect killed while copying layers: the next run removes the scratch directory"
rm -rf "$T/arch" "$T/tmp"

# Concurrent builds: one cache, one output directory, two tags, three times.
for i in 1 2 3; do
	rm -rf "$T/out" "$T/cache"
	build "$T/out" old "$T/code2" "$T/cache" >"$T/a" 2>"$T/a.err" &
	pa=$!
	build "$T/out" latest "$T/code" "$T/cache" >"$T/b" 2>"$T/b.err" &
	pb=$!
	wait $pa || fail "concurrent build old: $(cat "$T/a.err")"
	wait $pb || fail "concurrent build latest: $(cat "$T/b.err")"
	[ "$(cat "$T/a")" = "$old" ] && [ "$(cat "$T/b")" = "$new" ] || fail "concurrent digests"
	[ "$(verify_layout "$T/out" | tr '\n' ' ')" = "latest=$new old=$old " ] ||
		fail "concurrent: index lacks a tag: $(cat "$T/out/index.json")"
	verify_cache "$T/cache"
	no_litter "$T"
done
ok "concurrent builds sharing a cache and an output directory: both tags, serial digests"
done_testing
