"""A stand-in for a REAPI worker fleet, for tests/remote_reapi.rs only (not part of cachepot).

One bot of BuildGrid's Remote Workers API, written with BuildGrid's own generated protos: it opens a
bot session, takes each lease it is given, fetches the action's command and input root from the
CAS, runs the command in a fresh directory, uploads the output files and reports the ActionResult.

    python3 reapi_worker.py HOST:PORT BOT_ID

With REAPI_WORKER_HIDE=path:path… it stands for a worker without those files (the host's compiler):
each command runs in a mount namespace where they are hidden (needs root and unshare).
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.google.bytestream import bytestream_pb2, bytestream_pb2_grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2, bots_pb2_grpc, worker_pb2

address, bot_id = sys.argv[1], sys.argv[2]
# Where large inputs are kept between actions (REAPI_WORKER_CACHE: the caller's, removed with it).
CACHE = os.environ.get("REAPI_WORKER_CACHE") or tempfile.mkdtemp(prefix=f"reapi-worker-cache-{bot_id}-")
os.makedirs(CACHE, exist_ok=True)
# Paths (":"-separated) the commands must not see: REAPI_WORKER_HIDE in this worker's environment.
HIDE = [p for p in os.environ.get("REAPI_WORKER_HIDE", "").split(":") if p]
HIDE_SCRIPT = (
    'IFS=:; for p in $REAPI_WORKER_HIDE; do '
    'if [ -d "$p" ]; then mount -t tmpfs none "$p"; else mount --bind /dev/null "$p"; fi || exit 126; '
    'done; unset IFS; exec "$@"'
)
channel = grpc.insecure_channel(address)
bots = bots_pb2_grpc.BotsStub(channel)
cas = re_grpc.ContentAddressableStorageStub(channel)
bytestream = bytestream_pb2_grpc.ByteStreamStub(channel)


def digest(data):
    return re.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def read(d):
    if d.size_bytes == 0:
        return b""
    if d.size_bytes > 1 << 20:
        # Batch calls are limited to a few MiB: large blobs (an uploaded compiler) stream.
        chunks = bytestream.Read(bytestream_pb2.ReadRequest(resource_name=f"blobs/{d.hash}/{d.size_bytes}"))
        data = b"".join(c.data for c in chunks)
        if digest(data) != d:
            raise RuntimeError(f"blob {d.hash} damaged")
        return data
    blob = cas.BatchReadBlobs(re.BatchReadBlobsRequest(digests=[d])).responses[0]
    if blob.status.code != 0 or digest(blob.data) != d:
        raise RuntimeError(f"blob {d.hash} missing or damaged")
    return blob.data


def write(data):
    """A large output (an rlib) through ByteStream Write, in 1 MiB chunks."""
    d = digest(data)
    name = f"uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"
    step = 1 << 20
    chunks = (
        bytestream_pb2.WriteRequest(
            resource_name=name if off == 0 else "",
            write_offset=off,
            finish_write=off + step >= len(data),
            data=data[off:off + step],
        )
        for off in range(0, len(data), step)
    )
    bytestream.Write(chunks)


def fetch_tree(d, into):
    directory = re.Directory.FromString(read(d))
    os.makedirs(into, exist_ok=True)
    for f in directory.files:
        path = os.path.join(into, f.name)
        if f.digest.size_bytes > 1 << 20:
            # Large inputs (an uploaded compiler) are kept between actions, as real workers keep
            # a local CAS: fetched once, then hard-linked (read-only) into each input root.
            cached = os.path.join(CACHE, f"{f.digest.hash}-{int(f.is_executable)}")
            if not os.path.exists(cached):
                with open(cached + ".tmp", "wb") as out:
                    out.write(read(f.digest))
                os.chmod(cached + ".tmp", 0o555 if f.is_executable else 0o444)
                os.replace(cached + ".tmp", cached)
            os.link(cached, path)
            continue
        with open(path, "wb") as out:
            out.write(read(f.digest))
        if f.is_executable:
            os.chmod(path, 0o755)
    for sub in directory.directories:
        fetch_tree(sub.digest, os.path.join(into, sub.name))


def run(action):
    command = re.Command.FromString(read(action.command_digest))
    with tempfile.TemporaryDirectory(prefix="reapi-worker-") as root:
        fetch_tree(action.input_root_digest, root)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update({v.name: v.value for v in command.environment_variables})
        cwd = os.path.join(root, command.working_directory)
        # The API: the worker creates the directories leading up to the outputs.
        for path in list(command.output_paths) or list(command.output_files):
            os.makedirs(os.path.dirname(os.path.join(cwd, path)), exist_ok=True)
        argv = list(command.arguments)
        if HIDE:
            # A worker without the host's compiler: the hidden paths are empty (a directory) or
            # unreadable (a file) in a mount namespace of the command's own.
            env["REAPI_WORKER_HIDE"] = ":".join(HIDE)
            argv = ["unshare", "-m", "sh", "-c", HIDE_SCRIPT, "sh"] + argv
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True)
        result = re.ActionResult(exit_code=proc.returncode, stdout_raw=proc.stdout, stderr_raw=proc.stderr)
        uploads = []
        for path in list(command.output_paths) or list(command.output_files):
            full = os.path.join(cwd, path)
            if os.path.isfile(full):
                with open(full, "rb") as f:
                    data = f.read()
                result.output_files.add(path=path, digest=digest(data))
                if len(data) > 1 << 20:
                    write(data)
                else:
                    uploads.append(re.BatchUpdateBlobsRequest.Request(digest=digest(data), data=data))
        if uploads:
            cas.BatchUpdateBlobs(re.BatchUpdateBlobsRequest(requests=uploads))
        return result


worker = worker_pb2.Worker(
    devices=[worker_pb2.Device(handle=bot_id, properties=[worker_pb2.Device.Property(key="OSFamily", value="linux")])]
)
session = bots.CreateBotSession(
    bots_pb2.CreateBotSessionRequest(
        parent="", bot_session=bots_pb2.BotSession(bot_id=bot_id, status=bots_pb2.OK, worker=worker)
    )
)
while True:
    for lease in session.leases:
        # BuildGrid hands a lease out already ACTIVE; a finished one is reported COMPLETED.
        if lease.state not in (bots_pb2.LeaseState.PENDING, bots_pb2.LeaseState.ACTIVE):
            continue
        action = re.Action()
        if lease.payload.Is(re.Action.DESCRIPTOR):
            lease.payload.Unpack(action)
        else:
            d = re.Digest()
            lease.payload.Unpack(d)
            action = re.Action.FromString(read(d))
        try:
            lease.result.Pack(run(action))
            lease.status.code = 0
        except Exception as e:  # a worker fault, reported as one (not as the compiler's failure)
            lease.status.code = 13
            lease.status.message = str(e)
        lease.state = bots_pb2.LeaseState.COMPLETED
    try:
        session = bots.UpdateBotSession(bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session))
    except grpc.RpcError as e:
        if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            sys.exit(0)
        time.sleep(0.1)
