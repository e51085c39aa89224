#!/usr/bin/env python3
"""Respawn latency of two circusd binaries, interleaved, beside the bare spawn loop.

Runs run.py's respawn scenario (SIGKILL one of 4 processes, time until the replacement's
`spawn` event reaches a SUB socket) for binary A, binary B and the bare C loop in turn,
batch after batch, so that both binaries see the same machine. For comparing a change's
effect on respawn latency (e.g. before and after a merge): build both with
`swift build -c release --static-swift-stdlib --product circusd` in two worktrees.

    Benchmarks/respawn_ab.py OLD/circusd NEW/circusd --batches 10 --samples 400
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchvenv  # noqa: E402

benchvenv.require(__file__, "zmq", "psutil")
import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="circusd binary A")
    ap.add_argument("b", help="circusd binary B")
    ap.add_argument("--batches", type=int, default=10, help="A, B, bare rounds (default 10)")
    ap.add_argument("--samples", type=int, default=400, help="kills per binary over all batches (default 400)")
    args = ap.parse_args()
    args.reps_respawn = args.batches
    args.respawn_samples = args.samples
    args.python_respawn_samples = 1
    args.respawn_timeout = 15.0
    args.keep_temp = False
    run.LIBC.prctl(run.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    builddir = tempfile.mkdtemp(prefix="cbench-ab-")
    try:
        bare = run.build_bare(builddir)
        runners = [("A", os.path.abspath(args.a)), ("B", os.path.abspath(args.b)), ("bare", None)]
        run.scenario_respawn(args, runners, bare)
        print(f"\nrespawn latency, {args.batches} interleaved batches (ms)")
        print(f"{'':6} {'n':>5} {'p50':>8} {'p90':>8} {'p99':>8}")
        for label in ("A", "B", "bare"):
            xs = run.R.get("respawn", {}).get(label, [])
            if xs:
                print(f"{label:6} {len(xs):5d} {statistics.median(xs):8.3f} {run.percentile(xs, 0.90):8.3f} "
                      f"{run.percentile(xs, 0.99):8.3f}")
        for note in run.NOTES:
            print("note:", note)
    finally:
        run.emergency_cleanup()
        shutil.rmtree(builddir, ignore_errors=True)
        run.reap_orphans()


if __name__ == "__main__":
    main()
