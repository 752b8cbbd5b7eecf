#!/usr/bin/env bash
# Regenerates the seed corpora from openssl-made throwaway keys (they protect nothing).
set -euo pipefail
cd "$(dirname "$0")"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
kf=corpus/key_file; pk=corpus/public_key
mkdir -p "$kf" "$pk"
gen() { openssl genpkey "$@" 2>/dev/null; }
gen -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$t/rsa.pem"
gen -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/p256.pem"
gen -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$t/p384.pem"
gen -algorithm ED25519 -out "$t/ed.pem"
for k in rsa p256 p384 ed; do
  # A leading byte: 0 = no passphrase, 1 = passphrase "fuzz" (see fuzz_targets/key_file.rs).
  { printf '\0'; cat "$t/$k.pem"; } > "$kf/$k.pkcs8.pem"
  { printf '\0'; openssl pkey -in "$t/$k.pem" -outform DER; } > "$kf/$k.pkcs8.der"
  { printf '\1'; openssl pkcs8 -topk8 -v2 aes-128-cbc -iter 1 -passout pass:fuzz -in "$t/$k.pem"; } > "$kf/$k.aes.p8"
  { printf '\1'; openssl pkcs8 -topk8 -v2 des3 -iter 1 -passout pass:fuzz -in "$t/$k.pem" -outform DER; } > "$kf/$k.des3.der"
  openssl pkey -in "$t/$k.pem" -pubout > "$pk/$k.pem"
  openssl pkey -in "$t/$k.pem" -pubout -outform DER > "$pk/$k.der"
done
{ printf '\0'; openssl rsa -in "$t/rsa.pem" -traditional 2>/dev/null; } > "$kf/rsa.pkcs1.pem"
{ printf '\0'; openssl ec -in "$t/p256.pem" 2>/dev/null; } > "$kf/p256.sec1.pem"
{ printf '\0'; openssl ec -in "$t/p384.pem" -outform DER 2>/dev/null; } > "$kf/p384.sec1.der"
openssl rsa -in "$t/rsa.pem" -RSAPublicKey_out 2>/dev/null > "$pk/rsa.pkcs1.pem"
printf '%s\n' '{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}' > "$pk/ed.jwk"
printf '%s\n' 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl seed' > "$pk/ed.ssh"
# ssh-agent message bodies (fuzz_targets/ssh_agent_message.rs): identities, sign requests for a
# plain key and for a certificate, a refused add-identity and an extension.
am=corpus/ssh_agent_message
mkdir -p "$am"
u32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
blob() { awk '{print $2}' "$1" | base64 -d; }
sign() { b=$(blob "$1" | wc -c); { printf '\x0d'; u32 "$b"; blob "$1"; u32 4; printf 'data'; u32 "$2"; }; }
ssh-keygen -q -t ed25519 -N '' -C seed -f "$t/user"
ssh-keygen -q -t ecdsa -N '' -C seed -f "$t/ca"
ssh-keygen -q -s "$t/ca" -I seed -n seed "$t/user.pub"
printf '\x0b' > "$am/identities"
sign "$t/user.pub" 0 > "$am/sign"
sign "$t/user-cert.pub" 4 > "$am/sign_certificate"
{ printf '\x11'; u32 11; printf 'ssh-ed25519'; } > "$am/add_identity"
{ printf '\x1b'; u32 24; printf 'session-bind@openssh.com'; } > "$am/extension"
# corpus/keyvault_reply was made by hand from shared/data/keyvault (a recorded key bundle with
# the key renamed `k`, and the recorded error bodies), plus two key URLs: see
# fuzz_targets/keyvault_reply.rs for the byte layout.
# corpus/ssh_agent_stream: framed client streams (an identities request; two requests and a
# malformed sign request; an oversized message cut short; a truncated frame; a 4 GiB prefix):
st=corpus/ssh_agent_stream; mkdir -p "$st"
printf '\x00\x00\x00\x01\x0b' > "$st/identities"
printf '\x00\x00\x00\x01\x0b\x00\x00\x00\x01\x0b\x00\x00\x00\x05\x0d\x00\x00\x00\x00' > "$st/two-and-a-bad-sign"
printf '\x00\x00\x20\x00AAAA' > "$st/oversized-truncated"
printf '\x00\x00\x00\x0a\x0b\x00' > "$st/truncated"
printf '\xff\xff\xff\xff' > "$st/huge-prefix"
# PKCS#11 URIs (fuzz_targets/pkcs11_uri.rs): the forms the README and tests use.
pu=corpus/pkcs11_uri
mkdir -p "$pu"
printf '%s' 'pkcs11:token=ci;object=signing;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin' > "$pu/full"
printf '%s' 'pkcs11:serial=68cefeb518a36344;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;id=%a0;type=private' > "$pu/token_attrs"
printf '%s' 'pkcs11:object=k?pin-value=123456' > "$pu/pin_value"
printf '%s' 'pkcs11:object=k;x-vendor=1?pin-source=file:///run/pin&x-q=2' > "$pu/vendor"
