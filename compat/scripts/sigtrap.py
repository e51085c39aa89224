"""Watcher helper: logs every HUP/USR1/USR2 it receives.

usage: sigtrap.py OUTFILE [NKIDS]

Writes "<pid> READY" once its handlers are installed, then "<pid> SIGxxx"
for each trapped signal.  With NKIDS > 0 it first starts that many copies of
itself as children (which exit when their parent goes away).  SIGTERM kills
the children and then the process itself (exit status -15).
"""
import os
import signal
import subprocess
import sys
import time

out = sys.argv[1]
nkids = int(sys.argv[2]) if len(sys.argv) > 2 else 0
parent = os.getppid()
kids = []


def log(word):
    with open(out, "a") as f:
        f.write("%d %s\n" % (os.getpid(), word))


def trap(signum, frame):
    log(signal.Signals(signum).name)


def term(signum, frame):
    for k in kids:
        try:
            k.kill()
            k.wait()
        except OSError:
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, trap)
signal.signal(signal.SIGTERM, term)

for _ in range(nkids):
    kids.append(subprocess.Popen([sys.executable, __file__, out, "0"]))
log("READY")
while True:
    time.sleep(0.1)
    if os.getppid() != parent:
        term(None, None)
