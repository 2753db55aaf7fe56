"""Build hook: generate the Python gRPC stubs whenever the project is built or installed."""

from __future__ import annotations

import runpy
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class GenerateStubsHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        script = Path(self.root) / "scripts" / "generate_stubs.py"
        runpy.run_path(str(script), run_name="beamops_generate")["generate_python"]()
