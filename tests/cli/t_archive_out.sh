#!/usr/bin/env bash
# docker-archive output (what docker load / podman load read): skopeo judges.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
assemble() {
	$OCILAMBDA assemble --conda-prefix "$P" --code "$T/code" --handler example.lambda_handler \
		--base "oci:$B:3.8" "$@"
}
d=$(assemble --output "oci:$T/out:latest")
a=$(assemble --output "docker-archive:$T/fn.tar:fn:v1" --digestfile "$T/df")
[ "$a" = "$d" ] || fail "same image, same manifest digest ($a vs $d)"
[ "$(cat "$T/df")" = "$d" ] || fail "--digestfile"
skopeo inspect "docker-archive:$T/fn.tar" >"$T/i.json"
skopeo inspect --config "docker-archive:$T/fn.tar" >"$T/c.json"
skopeo inspect --config "oci:$T/out:latest" >"$T/c-oci.json"
cmp -s "$T/c.json" "$T/c-oci.json" || fail "skopeo sees the same config in both"
tar tf "$T/fn.tar" >"$T/members"
grep -cx manifest.json "$T/members" >/dev/null || fail "manifest.json"
grep -cx repositories "$T/members" >/dev/null || fail "repositories"
tar xf "$T/fn.tar" -C "$T" manifest.json
[ "$(json "$T/manifest.json" 'j[0]["RepoTags"]')" = "['fn:v1']" ] || fail "RepoTags"
[ "$(json "$T/manifest.json" 'len(j[0]["Layers"])')" = "$(json "$T/c.json" 'len(j["rootfs"]["diff_ids"])')" ] ||
	fail "one member per layer"
skopeo copy "docker-archive:$T/fn.tar" "oci:$T/copied:x" >/dev/null
umoci unpack --rootless --image "$T/copied:x" "$T/bundle" >/dev/null
[ "$(readlink "$T/bundle/rootfs/var/lang/bin/python3.8")" = /opt/conda-env/bin/python ] ||
	fail "the archive's layers unpack to the image"
ok "docker-archive:FILE:fn:v1 — skopeo inspects and copies it; umoci unpacks the copy"

a2=$(assemble --output "docker-archive:$T/fn2.tar:fn:v1")
cmp -s "$T/fn.tar" "$T/fn2.tar" || fail "two builds, different archives"
ok "reproducible archive bytes"

# The archive is a base too (our reader), and push takes it.
a3=$($OCILAMBDA push "docker-archive:$T/fn.tar" "oci:$T/re:x" 2>/dev/null)
skopeo inspect "oci:$T/re:x" >/dev/null || fail "push docker-archive: -> oci:"
ok "push reads the archive back"

echo old >"$T/keep.tar"
mkfifo "$T/code/pipe"
expect_fail 2 "pipe" assemble --output "docker-archive:$T/keep.tar:fn:v1"
rm "$T/code/pipe"
[ "$(cat "$T/keep.tar")" = old ] || fail "failed build replaced the archive"
no_litter "$T"
expect_fail 1 "docker-archive:$T/x.tar:Bad/Name" assemble --output "docker-archive:$T/x.tar:Bad/Name"
[ ! -e "$T/x.tar" ] || fail "archive written for a bad tag"
mkdir "$T/adir"
expect_fail 2 "is a directory" assemble --output "docker-archive:$T/adir"
ok "a failed build leaves an existing archive alone; bad REPO:TAG or a directory refused"

if command -v podman >/dev/null 2>&1; then
	podman load -i "$T/fn.tar" >/dev/null || fail "podman load"
	ok "podman load"
else
	echo "# podman is not installed here; docker load / podman load not run"
fi
done_testing
