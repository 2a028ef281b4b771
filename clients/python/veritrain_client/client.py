"""A small gRPC client of a Veritrain node: accounts, signing, submitting
training tasks and following them to the end."""
import hashlib
import os
import sys
import time
from typing import Any, Callable, Iterable, Optional

import grpc
from ecdsa import SECP256k1, SigningKey
from ecdsa.util import sigencode_string_canonize

from .generate import generate

sys.path.insert(0, str(generate()))

from google.protobuf import any_pb2  # noqa: E402
from veritrain.auth.v1 import query_pb2 as auth_query  # noqa: E402
from veritrain.auth.v1 import query_pb2_grpc as auth_query_grpc  # noqa: E402
from veritrain.base.v1 import base_pb2  # noqa: E402
from veritrain.node.v1 import node_pb2, node_pb2_grpc  # noqa: E402
from veritrain.swarm.v1 import query_pb2 as swarm_query  # noqa: E402
from veritrain.swarm.v1 import query_pb2_grpc as swarm_query_grpc  # noqa: E402
from veritrain.swarm.v1 import swarm_pb2  # noqa: E402
from veritrain.tasks.v1 import query_pb2 as tasks_query  # noqa: E402
from veritrain.tasks.v1 import query_pb2_grpc as tasks_query_grpc  # noqa: E402
from veritrain.tasks.v1 import tasks_pb2  # noqa: E402
from veritrain.tasks.v1 import tx_pb2 as tasks_tx  # noqa: E402
from veritrain.tx.v1 import tx_pb2  # noqa: E402

DENOM = "uvtr"
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values: Iterable[int]) -> int:
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((b >> i) & 1) else 0
    return chk


def bech32_encode(hrp: str, data: bytes) -> str:
    """BIP-173 bech32 of 8-bit `data`."""
    acc, bits, five = 0, 0, []
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    expand = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = _bech32_polymod(expand + five + [0] * 6) ^ 1
    checksum = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in five + checksum)


class Signer:
    """A secp256k1 key; its address is bech32("vt", sha256(pubkey)[:20])."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError(f"a secret key is 32 bytes (64 hex digits), got {len(secret)}")
        self.key = SigningKey.from_string(secret, curve=SECP256k1, hashfunc=hashlib.sha256)
        self.public_key = self.key.get_verifying_key().to_string("compressed")
        self.address = bech32_encode("vt", hashlib.sha256(self.public_key).digest()[:20])

    @classmethod
    def from_file(cls, path: str) -> "Signer":
        with open(path) as f:
            text = f.read().strip()
        if not text:
            raise ValueError(f"key file {path} is empty: it should hold a 64-hex-digit secret")
        return cls(bytes.fromhex(text))

    def sign(self, doc: bytes) -> bytes:
        return self.key.sign_deterministic(
            doc, hashfunc=hashlib.sha256, sigencode=sigencode_string_canonize
        )


class TaskEnded(Exception):
    pass


def _any(msg: Any, type_url: str) -> any_pb2.Any:
    a = any_pb2.Any()
    a.type_url = type_url
    a.value = msg.SerializeToString()
    return a


class Client:
    def __init__(self, url: str) -> None:
        target = url.split("://", 1)[-1]
        self.channel = grpc.insecure_channel(target)
        self.node = node_pb2_grpc.NodeStub(self.channel)
        self.auth = auth_query_grpc.QueryStub(self.channel)
        self.tasks = tasks_query_grpc.QueryStub(self.channel)
        self.swarms = swarm_query_grpc.QueryStub(self.channel)
        # Seed secrets of tasks this client submitted, revealed by `follow`
        # once each result is committed (task id -> (signer, secret)).
        self._seeds: dict = {}
        self._revealed: dict = {}

    def status(self) -> node_pb2.StatusResponse:
        return self.node.Status(node_pb2.StatusRequest())

    def sign_and_send(
        self, signer: Signer, msgs: "list[any_pb2.Any]", memo: str = "", timeout: float = 60.0
    ) -> node_pb2.TxResult:
        """Signs `msgs` (packed Any) with the account's number and sequence,
        broadcasts, and waits for the committed result."""
        acct = self.auth.Account(auth_query.QueryAccountRequest(address=signer.address)).account
        status = self.status()
        body = tx_pb2.TxBody(messages=msgs, memo=memo, chain_id=status.chain_id).SerializeToString()
        # The fee depends on the transaction's size and the work its messages
        # may cause: the node computes it (Node/EstimateFee); 256 bytes cover
        # the auth info and signature.
        est = self.node.EstimateFee(
            node_pb2.EstimateFeeRequest(
                messages=[m.SerializeToString() for m in msgs], tx_bytes=len(body) + 256
            )
        )
        auth_info = tx_pb2.AuthInfo(
            public_key=signer.public_key,
            sequence=acct.sequence,
            fee=tx_pb2.Fee(amount=base_pb2.Coin(denom=DENOM, amount=est.fee)),
        ).SerializeToString()
        doc = tx_pb2.SignDoc(
            body_bytes=body,
            auth_info_bytes=auth_info,
            chain_id=status.chain_id,
            account_number=acct.account_number,
        ).SerializeToString()
        raw = tx_pb2.TxRaw(body_bytes=body, auth_info_bytes=auth_info, signature=signer.sign(doc))
        r = self.node.BroadcastTx(node_pb2.BroadcastTxRequest(tx=raw.SerializeToString()))
        if r.code != 0:
            raise RuntimeError(f"rejected: {r.codespace} code {r.code}: {r.log}")
        end = time.time() + timeout
        while True:
            try:
                res = self.node.GetTx(node_pb2.GetTxRequest(hash=r.hash)).result
                if res.code != 0:
                    raise RuntimeError(f"failed: {res.codespace} code {res.code}: {res.log}")
                return res
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            if time.time() > end:
                raise TimeoutError(f"transaction {r.hash.hex()} not included in {timeout} s")
            time.sleep(0.1)

    def submit_task(
        self,
        signer: Signer,
        program_json: bytes,
        reward: int,
        fee: int,
        sample_bps: Optional[int] = None,
        seed: bool = True,
    ) -> int:
        """Submits a job. By default every drawn verifier re-executes it in
        full; `sample_bps` asks for the cheaper sampled level instead (that
        many basis points of the steps per verifier). The task's `guarantee`
        (see `task`) says what the level catches. With `seed` (the default)
        the job commits to a random secret that `follow` reveals after the
        commit, so no block proposer can steer which verifiers are drawn."""
        secret = os.urandom(32) if seed else None
        msg = tasks_tx.MsgSubmitTask(
            submitter=signer.address,
            program_json=program_json,
            reward=base_pb2.Coin(denom=DENOM, amount=str(reward)),
            verification_fee=base_pb2.Coin(denom=DENOM, amount=str(fee)),
            verification_level=(
                tasks_pb2.VERIFICATION_LEVEL_FULL
                if sample_bps is None
                else tasks_pb2.VERIFICATION_LEVEL_SAMPLED
            ),
            sample_bps=sample_bps or 0,
            seed_commitment=hashlib.sha256(secret).digest() if secret else b"",
        )
        res = self.sign_and_send(signer, [_any(msg, "/veritrain.tasks.v1.MsgSubmitTask")])
        for ev in res.events:
            if ev.type == "veritrain.tasks.v1.EventTaskSubmitted":
                for a in ev.attributes:
                    if a.key == "task_id":
                        task_id = int(a.value)
                        if secret is not None:
                            self._seeds[task_id] = (signer, secret)
                        return task_id
        raise RuntimeError("no task id in the result")

    def swarm(self, swarm_id: int) -> swarm_pb2.Swarm:
        """A swarm: its program, budget, current round and global model."""
        return self.swarms.Swarm(swarm_query.QuerySwarmRequest(swarm_id=swarm_id)).swarm

    def swarm_round(self, swarm_id: int, round: int) -> swarm_pb2.Round:
        """One round: contributions, measurements, improvements and payouts."""
        return self.swarms.Round(swarm_query.QueryRoundRequest(swarm_id=swarm_id, round=round)).round

    def swarm_leaderboard(self, swarm_id: int = 0, limit: int = 20) -> list:
        """Contributors ranked by verified quality (swarm 0: over all swarms), best
        first; `quality` is in units of 2^-32 nats of held-out loss improvement."""
        r = self.swarms.Leaderboard(swarm_query.QueryLeaderboardRequest(swarm_id=swarm_id, limit=limit))
        return list(r.entries)

    def task(self, task_id: int) -> tasks_query.QueryTaskResponse:
        return self.tasks.Task(tasks_query.QueryTaskRequest(task_id=task_id))

    def drawn_from_revealed_seed(self, t: tasks_pb2.Task) -> bool:
        """Whether task `t`'s verifiers were drawn from the seed this client
        revealed (and not from the block-hash fallback)."""
        secret = self._revealed.get(t.id)
        if secret is None:
            return False
        h = hashlib.sha256(
            b"veritrain/tasks/selection-revealed" + secret + t.trace_root + t.id.to_bytes(8, "big")
        ).digest()
        return h == t.selection_seed

    def follow(
        self,
        task_id: int,
        timeout: float = 600.0,
        on_change: Optional[Callable[[str], Any]] = print,
    ) -> tasks_pb2.Task:
        """Polls the task until it ends; calls `on_change` with each new summary line."""
        ended = {
            tasks_pb2.TASK_STATUS_FINALIZED,
            tasks_pb2.TASK_STATUS_FAILED,
            tasks_pb2.TASK_STATUS_CANCELLED,
            tasks_pb2.TASK_STATUS_EXPIRED,
        }
        last = None
        end = time.time() + timeout
        while True:
            r = self.task(task_id)
            pending = self._seeds.get(task_id)
            if (
                pending is not None
                and r.task.status == tasks_pb2.TASK_STATUS_COMMITTED
                and not r.task.selection_seed
            ):
                signer, secret = self._seeds.pop(task_id)
                msg = tasks_tx.MsgRevealSeed(submitter=signer.address, task_id=task_id, secret=secret)
                self.sign_and_send(signer, [_any(msg, "/veritrain.tasks.v1.MsgRevealSeed")])
                self._revealed[task_id] = secret
            if r.summary != last:
                last = r.summary
                if on_change is not None:
                    on_change(f"task {task_id}: {r.summary}")
            if r.task.status in ended:
                return r.task
            if time.time() > end:
                raise TaskEnded(f"task {task_id} did not end within {timeout} s: {r.summary}")
            time.sleep(0.25)
