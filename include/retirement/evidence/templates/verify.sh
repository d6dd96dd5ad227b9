#!/bin/sh
# Check a closure dossier with standard tools only: sha256sum, openssl and a POSIX shell
# (and age and zstd for --archives). docs/audit.md describes every step and format.
#
#   sh verify.sh --public-key signing.pub.pem [DIR]
#   sh verify.sh --key-fingerprint SHA256:<hex> [DIR]
#   ... [--tsa-ca tsa-ca.pem] [--archives FOLDER [--identity age.key]]
#
# The key (or its fingerprint) must be the one the company published, not the copy in the
# dossier. Exits 0 when everything verifies, 1 naming the first thing that does not, 2 when
# used wrongly.
set -eu

usage() {
  echo "usage: sh verify.sh (--public-key PEM | --key-fingerprint SHA256:<hex>) [DIR]" \
    "[--tsa-ca PEM] [--archives FOLDER [--identity KEY]]" >&2
  exit 2
}
fail() {
  echo "FAILED: $*" >&2
  exit 1
}
ok() { echo "ok: $*"; }

key='' fingerprint='' dir='' archives='' identity='' tsa_ca=''
while [ $# -gt 0 ]; do
  case $1 in
    --public-key) [ $# -ge 2 ] || usage; key=$2; shift 2 ;;
    --key-fingerprint) [ $# -ge 2 ] || usage; fingerprint=$2; shift 2 ;;
    --archives) [ $# -ge 2 ] || usage; archives=$2; shift 2 ;;
    --identity) [ $# -ge 2 ] || usage; identity=$2; shift 2 ;;
    --tsa-ca) [ $# -ge 2 ] || usage; tsa_ca=$2; shift 2 ;;
    -*) usage ;;
    *) [ -z "$dir" ] || usage; dir=$1; shift ;;
  esac
done
[ -n "$key$fingerprint" ] || {
  echo "give the company's published signing key (--public-key signing.pub.pem) or its" \
    "fingerprint (--key-fingerprint SHA256:<hex>), as published by the company, not the" \
    "copy in the dossier" >&2
  usage
}
case $key in /*|'') ;; *) key=$(pwd)/$key ;; esac
case $identity in /*|'') ;; *) identity=$(pwd)/$identity ;; esac
case $archives in /*|'') ;; *) archives=$(pwd)/$archives ;; esac
case $tsa_ca in /*|'') ;; *) tsa_ca=$(pwd)/$tsa_ca ;; esac
cd "${dir:-$(dirname "$0")}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. The key: the published one, or the dossier's copy if it has the published fingerprint.
if [ -z "$key" ]; then
  key=$(pwd)/signing.pub.pem
  got=SHA256:$(openssl pkey -pubin -in "$key" -outform DER | sha256sum | cut -c1-64)
  [ "$got" = "$fingerprint" ] ||
    fail "signing.pub.pem is key $got, not the published $fingerprint: signed by another key"
fi
ok "key $(openssl pkey -pubin -in "$key" -outform DER | sha256sum | cut -c1-64)"

# 2. The signature of SHA256SUMS.
openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig \
  >/dev/null 2>&1 || fail "SHA256SUMS.sig does not verify with the published key"
ok "SHA256SUMS is signed by the published key"

# 3. The listing: every file present is listed, every file listed is present.
find . -type f ! -path ./SHA256SUMS ! -path ./SHA256SUMS.sig ! -path ./SHA256SUMS.tsq \
  ! -path ./SHA256SUMS.tsr | sed 's|^\./||' | LC_ALL=C sort \
  >"$tmp/present"
cut -c67- SHA256SUMS | LC_ALL=C sort >"$tmp/listed"
cmp -s "$tmp/present" "$tmp/listed" ||
  fail "files differ from the listing in SHA256SUMS: $(diff "$tmp/listed" "$tmp/present" |
    sed -n 's/^> / added: /p; s/^< / missing: /p' | tr '\n' ' ')"
ok "the listing in SHA256SUMS is exactly the files present"

# 4. Every file's digest.
sha256sum -c --quiet SHA256SUMS || fail "a file differs from its digest in SHA256SUMS"
ok "every file matches its digest"

# 5. Every manifest's and certificate's own signature.
for sig in manifests/*.sig certificates/*.sig; do
  [ -f "$sig" ] || continue
  openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "${sig%.sig}" -sigfile "$sig" \
    >/dev/null 2>&1 || fail "$sig does not verify"
done
if [ -f head.json.sig ]; then # the head as the seal sent it to the plan's witnesses
  openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in head.json -sigfile head.json.sig \
    >/dev/null 2>&1 || fail "head.json.sig does not verify"
fi
ok "every manifest and certificate signature verifies"

# 6. The chain: ledger.jsonl recomputed from head.json's link to its signed head.
# head.json's top-level keys are indented by one space (a later version nests `supersedes`)
field() { sed -n "s/^ \"$1\": *\"*\([0-9a-zA-Z]*\)\"*,*\$/\1/p" head.json; }
[ "$(field format_version)" = 2 ] || fail "head.json: not dossier format 2"
h=$(field prev_hash) seq=$(field from_seq) v3=$(field encoding_3_from)
[ "$v3" = null ] && v3=999999999999
while IFS= read -r line; do
  case $line in
    '{"line_sha256":"'*) d=$(printf '%s' "$line" | cut -c17-80) ;;
    '{"hash":"'*) h=$(printf '%s' "$line" | cut -c10-73)
      echo "$seq $h" >>"$tmp/hashes"; seq=$((seq + 1)); continue ;;
    *)
      if [ "$seq" -lt "$v3" ]; then # encoding 2: the line names the previous hash
        case $line in *",\"prev\":\"$h\",\"run_id\":"*",\"seq\":$seq}") ;;
          *) fail "ledger.jsonl: event $seq does not link to the one before it" ;; esac
        h=$(printf '%s' "$line" | sha256sum | cut -c1-64)
        echo "$seq $h" >>"$tmp/hashes"; seq=$((seq + 1)); continue
      fi
      case $line in *",\"seq\":$seq}") ;;
        *) fail "ledger.jsonl: event $seq is not in its place" ;; esac
      d=$(printf '%s' "$line" | sha256sum | cut -c1-64) ;;
  esac
  h=$(printf '%s%s' "$h" "$d" | sha256sum | cut -c1-64)
  echo "$seq $h" >>"$tmp/hashes"
  seq=$((seq + 1))
done <ledger.jsonl
[ "$((seq - 1))" = "$(field events)" ] && [ "$h" = "$(field chain_head)" ] ||
  fail "ledger.jsonl: the chain ends at event $((seq - 1)) with $h, not at head.json's head"
ok "the chain recomputes to the signed head $h"

# 7. The RFC 3161 time-stamps, when the plan named an authority: each token verifies with
# the authority's CA for its request and for the digest it stands for: timestamps/<gate>.<seq>
# the chain's hash after event <seq>, timestamps/seal head.json's head, SHA256SUMS.tsr the
# sha256 of SHA256SUMS.
tsv() {
  openssl ts -verify -in "$1" -queryfile "${1%.tsr}.tsq" -CAfile "$tsa_ca" >/dev/null 2>&1 &&
    openssl ts -verify -in "$1" -digest "$2" -CAfile "$tsa_ca" >/dev/null 2>&1 ||
    fail "$1 does not time-stamp $2, or does not verify with the authority's CA"
}
tokens=$(find . -name '*.tsr' | wc -l | tr -d ' ')
if [ "$tokens" -gt 0 ]; then
  [ -n "$tsa_ca" ] || fail "the dossier holds $tokens RFC 3161 time-stamp tokens: give the" \
    "time-stamping authority's CA certificate with --tsa-ca PEM"
  for t in timestamps/*.tsr; do
    [ -f "$t" ] || continue
    case $t in
      timestamps/seal.tsr) d=$(field chain_head) ;;
      *) s=${t%.tsr}; s=${s##*.}; d=$(sed -n "s/^$s //p" "$tmp/hashes")
        [ -n "$d" ] || fail "$t: event $s is not in ledger.jsonl" ;;
    esac
    tsv "$t" "$d"
  done
  if [ -f SHA256SUMS.tsr ]; then tsv SHA256SUMS.tsr "$(sha256sum <SHA256SUMS | cut -c1-64)"; fi
  ok "$tokens time-stamp tokens verify with the authority's CA and stamp the chain as it is"
fi

# 8. Optional: every encrypted archive (.age) and delivered copy under FOLDER against the
# signed manifest of the same name; with --identity, decrypted and its plaintext checked.
[ -n "$archives" ] || exit 0
mfield() { sed -n "s/^ *\"$1\": *\"\([^\"]*\)\",*\$/\1/p" "$2" | head -1; }
find "$archives" -type f \( -name '*.age' -o -name '*.age.manifest.json' \) >"$tmp/found"
[ -s "$tmp/found" ] || fail "no .age file or manifest under $archives"
while IFS= read -r f; do
  name=$(basename "$f")
  case $name in
    *.manifest.json)
      cmp -s "$f" "manifests/$name" || fail "$f: not the signed manifests/$name"
      continue ;;
  esac
  m=manifests/$name.manifest.json
  [ -f "$m" ] || fail "$f: no signed manifest of that name in the dossier"
  [ "$(sha256sum <"$f" | cut -c1-64)" = "$(mfield ciphertext_sha256 "$m")" ] ||
    fail "$f: sha256 differs from $m"
  if [ -n "$identity" ]; then
    plain=$(age -d -i "$identity" "$f" | zstd -dc | sha256sum | cut -c1-64)
    [ "$plain" = "$(mfield plaintext_sha256 "$m")" ] ||
      fail "$f: decrypted, its plaintext differs from $m (or the identity cannot decrypt it)"
  fi
done <"$tmp/found"
ok "$(wc -l <"$tmp/found" | tr -d ' ') archive files match their signed manifests${identity:+ (decrypted and checked)}"
