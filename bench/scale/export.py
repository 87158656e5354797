#!/usr/bin/env python3
"""Exports a jpki store's certificates for the OCSP benchmark (bench/scale/ocsp.sh).

usage: export.py JPKI DATA OUTDIR
Writes OUTDIR/auth.serials and OUTDIR/signing.serials (hex, one a line, every certificate
of the hierarchy), and OUTDIR/index.txt (+ .attr): an `openssl ocsp -index` database of the
same authentication certificates with their statuses."""
import json, subprocess, sys, datetime

jpki, data, out = sys.argv[1:4]

def page(kind, after):
    args = [jpki, "--data", data, "cert", "list", "--kind", kind, "--json", "--limit", "10000"]
    if after:
        args += ["--after", after]
    return json.loads(subprocess.check_output(args))

def stamp(rfc3339):
    t = datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return t.strftime("%y%m%d%H%M%SZ")

index = []
for kind in ["auth", "signing"]:
    n = 0
    with open(f"{out}/{kind}.serials", "w") as f:
        after = None
        while True:
            p = page(kind, after)
            for c in p["certificates"]:
                f.write(c["serial"] + "\n")
                n += 1
                if kind == "auth":
                    if c["status"] == "good":
                        index.append(f"V\t{stamp(c['not_after'])}\t\t{c['serial']}\tunknown\t/CN={c['serial']}")
                    else:
                        reason = c.get("reason") or "unspecified"
                        index.append(f"R\t{stamp(c['not_after'])}\t{stamp(c['revoked_at'])},{reason}\t{c['serial']}\tunknown\t/CN={c['serial']}")
            after = p.get("next")
            if not after:
                break
    print(f"{kind}: {n} certificates", file=sys.stderr)
with open(f"{out}/index.txt", "w") as f:
    f.write("\n".join(index) + "\n")
with open(f"{out}/index.txt.attr", "w") as f:
    f.write("unique_subject = no\n")
