#!/usr/bin/env python3
"""`make demo` must keep working: run scripts/demo against this build (it
checks every step itself and exits non-zero on a surprise), then remove the
folder it leaves behind."""
import os
import re
import shutil
import subprocess
import sys

src = os.environ["QBLOCK_SRC"]
env = dict(os.environ, QBLOCK_BUILD=os.environ["QBLOCK_BUILD"])
p = subprocess.run([sys.executable, os.path.join(src, "scripts", "demo")],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                   env=env, timeout=120)
m = re.search(r"files are kept in (\S+)", p.stdout)
if m and os.path.isdir(m.group(1)):
    shutil.rmtree(m.group(1))
if p.returncode != 0 or "demo finished" not in p.stdout:
    print(p.stdout)
    sys.exit(1)
print("demo ok")
