"""Submit a training job and follow it to its verified end.

    python examples/submit_and_follow.py --node http://127.0.0.1:9090 \
        --key my.key --program program.json --reward 1000000

`--key` is a file holding the hex secret of a funded account; `--program` a
program JSON file (`train::Program`, as in `repops/SPEC.md`).
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from veritrain_client import Client, Signer  # noqa: E402
from veritrain_client.client import tasks_pb2  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node", default="http://127.0.0.1:9090")
    ap.add_argument("--key", required=True)
    ap.add_argument("--program", required=True)
    ap.add_argument("--reward", type=int, default=1_000_000)
    ap.add_argument("--fee", type=int, default=100_000)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument(
        "--sample-bps",
        type=int,
        default=None,
        help="verify by sampling this many basis points of the steps (default: full re-execution)",
    )
    a = ap.parse_args()
    c = Client(a.node)
    signer = Signer.from_file(a.key)
    st = c.status()
    print(f"connected to {st.chain_id} at height {st.height} as {signer.address}")
    task_id = c.submit_task(
        signer, pathlib.Path(a.program).read_bytes(), a.reward, a.fee, sample_bps=a.sample_bps
    )
    print(f"submitted task {task_id}")
    print(f"verification: {c.task(task_id).task.guarantee}")
    t = c.follow(task_id, timeout=a.timeout)
    status = tasks_pb2.TaskStatus.Name(t.status)
    print(f"task {task_id} ended: {status}")
    print(f"final_state_hash {t.final_state_hash.hex()}")
    draw = "revealed seed" if c.drawn_from_revealed_seed(t) else "block hash"
    print(f"verifiers drawn from the {draw}")
    for p in t.payouts:
        print(f"payout {p.amount} to {p.recipient}: {p.reason}")
    return 0 if t.status == tasks_pb2.TASK_STATUS_FINALIZED else 1


if __name__ == "__main__":
    sys.exit(main())
