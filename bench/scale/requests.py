#!/usr/bin/env python3
"""Writes OCSP requests (SHA-1 CertID, no nonce) for serials of a jpki store, for multi.lua.

usage: requests.py OUT TEMPLATE_AUTH.der SERIALS_AUTH [TEMPLATE_SIGNING.der SERIALS_SIGNING]
TEMPLATE_*.der: `openssl ocsp -issuer ROOT -serial 0x1 -no_nonce -reqout` for that root;
SERIALS_*: one hex serial a line. Every serial given is written once, in random order."""
import random, struct, sys

def build(template, serial_hex):
    # OCSPRequest/tbs/requestList/Request/CertID: five short-form SEQUENCE headers, then the
    # CertID's algorithm (11 bytes) and two 20-byte hashes (22 bytes each).
    prefix = template[10:10 + 55]
    assert template[10:12] == b"\x30\x09", "unexpected template"
    s = bytes.fromhex(serial_hex if len(serial_hex) % 2 == 0 else "0" + serial_hex).lstrip(b"\0") or b"\0"
    if s[0] & 0x80:
        s = b"\0" + s
    certid = prefix + bytes([0x02, len(s)]) + s
    der = bytes([0x30, len(certid)]) + certid
    for _ in range(4):
        der = bytes([0x30, len(der)]) + der
    return der

out = []
args = sys.argv[2:]
for tpl, serials in zip(args[0::2], args[1::2]):
    t = open(tpl, "rb").read()
    for line in open(serials):
        if line.strip():
            out.append(build(t, line.strip()))
random.shuffle(out)
with open(sys.argv[1], "wb") as f:
    for d in out:
        f.write(struct.pack(">H", len(d)) + d)
print(f"{len(out)} requests", file=sys.stderr)
