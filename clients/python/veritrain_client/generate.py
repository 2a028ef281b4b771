"""Generates the protobuf and gRPC modules, with type stubs (``.pyi``), from
``proto/`` into ``_gen/``.

``pip install ./clients/python`` runs this at build time, so an installed
client imports without grpcio-tools. In a source checkout that was not
installed, the first import generates them (``python -m
veritrain_client.generate --force`` regenerates)."""
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
GEN = HERE / "_gen"
PROTO = pathlib.Path(os.environ.get("VERITRAIN_PROTO", HERE.parents[2] / "proto"))


def generate(force: bool = False, out: pathlib.Path = GEN) -> pathlib.Path:
    """Generates into ``out`` unless it is newer than every ``.proto``; returns it."""
    stamp = out / ".stamp"
    protos = sorted(PROTO.glob("veritrain/**/*.proto"))
    if not protos:
        if stamp.exists():
            return out  # installed: built at install time, no proto/ around
        raise RuntimeError(
            f"no .proto files under {PROTO} and no generated code in {out}: "
            "install the client with `pip install ./clients/python` from the repository"
        )
    newest = max(p.stat().st_mtime for p in protos)
    if not force and stamp.exists() and stamp.stat().st_mtime >= newest:
        return out
    try:
        from grpc_tools import protoc
        import grpc_tools
    except ImportError as e:
        raise RuntimeError(
            "generating the protobuf modules needs grpcio-tools "
            "(pip install grpcio-tools), or install the client with pip"
        ) from e

    out.mkdir(parents=True, exist_ok=True)
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
    ] + [str(p.relative_to(PROTO)) for p in protos]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    # Packages for the generated tree (veritrain/<module>/v1/...), typed.
    for d in [out, *out.rglob("*")]:
        if d.is_dir():
            (d / "__init__.py").touch()
            (d / "py.typed").touch()
    stamp.touch()
    return out


if __name__ == "__main__":
    print(generate(force="--force" in sys.argv))
