"""Builds the protobuf and gRPC modules (with type stubs) from the repository's
``proto/`` into the package at install time: ``pip install ./clients/python``."""
import importlib.util
import pathlib

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent


class BuildWithGeneratedCode(build_py):
    def run(self):
        super().run()
        # generate.py alone: importing the package would need grpc already.
        spec = importlib.util.spec_from_file_location(
            "_vt_generate", HERE / "veritrain_client" / "generate.py"
        )
        gen = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gen)
        out = pathlib.Path(self.build_lib) / "veritrain_client" / "_gen"
        gen.generate(force=True, out=out)


setup(cmdclass={"build_py": BuildWithGeneratedCode})
