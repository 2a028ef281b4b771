"""Generates the protobuf and gRPC modules from ``proto/`` into ``_gen/``."""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
GEN = HERE / "_gen"
PROTO = HERE.parents[2] / "proto"


def generate(force: bool = False) -> pathlib.Path:
    stamp = GEN / ".stamp"
    protos = sorted(PROTO.glob("veritrain/**/*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {PROTO}")
    newest = max(p.stat().st_mtime for p in protos)
    if not force and stamp.exists() and stamp.stat().st_mtime >= newest:
        return GEN
    from grpc_tools import protoc
    import grpc_tools

    GEN.mkdir(exist_ok=True)
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO}",
        f"-I{include}",
        f"--python_out={GEN}",
        f"--grpc_python_out={GEN}",
    ] + [str(p.relative_to(PROTO)) for p in protos]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    # Packages for the generated tree (veritrain/<module>/v1/...).
    for d in GEN.rglob("*"):
        if d.is_dir():
            (d / "__init__.py").touch()
    stamp.touch()
    return GEN


if __name__ == "__main__":
    print(generate(force="--force" in sys.argv))
