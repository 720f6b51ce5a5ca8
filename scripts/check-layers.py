#!/usr/bin/env python3
"""Enforce DESIGN.md's layering: a layer may only use symbols defined in its
own layer or in layers below it.

Layers, bottom up (static libraries in the build directory):
  util < qapi < block core < nbd protocol < block drivers < nbd server <
  jobs < block/qmp < monitor < the generated QMP command table

For every layer, the undefined symbols of its archive must not be defined by
an archive of a higher layer.  (Everything is link_whole'd into libqblock,
so the final link alone would never notice an upward call.)
Usage: check-layers.py BUILD_DIR   -- exit 1 and a list on violation.
"""
import os
import subprocess
import sys

LAYERS = [
    ("util", ["util/libqbutil.a"]),
    ("qapi", ["qapi/libqbqapi.a"]),
    ("block core", ["block/libqbblock.a"]),
    ("nbd protocol", ["nbd/libqbnbdproto.a"]),
    ("block drivers", ["block/drivers/libqbdrivers.a"]),
    ("nbd", ["nbd/libqbnbd.a"]),
    ("jobs", ["block/jobs/libqbjobs.a"]),
    ("block qmp", ["block/qmp/libqbblockqmp.a"]),
    ("monitor", ["monitor/libqbmonitor.a"]),
    # The generated marshallers call every layer's qmp_*(); the program
    # hands the table to the monitor (monitor_set_command_table).
    ("qmp command table", ["qapi/libqbqapi-commands.a"]),
]


def symbols(archive, defined):
    args = ["nm", "-g", "--defined-only" if defined else "--undefined-only",
            archive]
    out = subprocess.run(args, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if not parts or line.endswith(":"):
            continue
        # weak definitions (W/V) are fallbacks, not providers
        if defined and parts[-2] in ("W", "V", "w", "v"):
            continue
        syms.add(parts[-1])
    return syms


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    layers = []
    for name, archives in LAYERS:
        present = [os.path.join(build, a) for a in archives
                   if os.path.exists(os.path.join(build, a))]
        if not present:
            continue
        undef, defd = set(), set()
        for a in present:
            undef |= symbols(a, False)
            defd |= symbols(a, True)
        layers.append((name, undef, defd))

    bad = []
    for i, (name, undef, _) in enumerate(layers):
        for upper, _, upper_def in layers[i + 1:]:
            for sym in sorted(undef & upper_def):
                bad.append("%s uses %s from the higher layer %s"
                           % (name, sym, upper))
    print("1..1")
    if bad:
        for b in bad:
            print("# " + b)
        print("not ok 1 - layering (%d upward references)" % len(bad))
        return 1
    print("ok 1 - layering: %d layers, no upward references" % len(layers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
