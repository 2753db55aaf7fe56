"""`beamops audit` prints what others wrote literally: no rich markup, no escape sequence, no link.

The registry refuses control characters at input (tests/security/test_audit_forgery.py), but the
CLI does not rely on it: events stored before that rule, or by any other path, are shown with
every non-printable character escaped (ESC as ``\\x1b``) and markup as plain text. The event is
put in the registry's database directly, as an old one would be, and the real CLI reads it from
a real registry, once as a pipe sees it and once as a colour terminal does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

from sqlalchemy import create_engine

from beamops.registry.server import create_server
from beamops.registry.settings import RegistrySettings
from beamops.registry.version_writes import insert_audit_event

from tests.fixtures.services import running

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "beamops"

HOSTILE = ("\x1b[31mred\x1b[0m [link=http://x]y[/link] [bold]loud[/bold] "
           "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ \x9b2J evil\u202egnp.exe")
LITERAL = ["\\x1b[31mred\\x1b[0m", "[link=http://x]y[/link]", "[bold]loud[/bold]",
           "\\x1b]8;;http://evil.example/\\x1b\\click", "\\x9b2J", "evil\\u202egnp.exe"]
RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own styling (bold headers), in terminal mode


async def _cli(env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(str(BIN), *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, (args, out, err)
    assert b"Traceback" not in err
    return out.decode("utf-8")


async def test_audit_prints_reasons_literally(tmp_path, tokens):
    settings = RegistrySettings(port=0, var_dir=tmp_path / "var", tokens_file=tokens.path,
                                database_url=f"sqlite:///{tmp_path / 'registry.db'}")
    async with running(create_server, settings) as (server, _channel):
        with create_engine(settings.database_url).begin() as conn:
            insert_audit_event(conn, dict(event_us=1_700_000_000_000_000, actor="mallory", action="deployment.deploy",
                                          model="m", resource="deployments/m", reason=HOSTILE,
                                          details={"note": HOSTILE}, request_id="r-1"))
        env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE")}
        env.update(BEAMOPS_REGISTRY_ADDRESS=f"127.0.0.1:{server.port}", BEAMOPS_TOKEN=tokens.reader,
                   BEAMOPS_CONFIG=str(tmp_path / "no-config.json"), COLUMNS="1000", TERM="xterm-256color")

        piped = await _cli(dict(env, TTY_COMPATIBLE="0"), "audit")
        assert "mallory" in piped and "\x1b" not in piped and "\x9b" not in piped and "\u202e" not in piped
        for text in LITERAL:
            assert text in piped, (text, piped)

        # As a colour terminal: rich styles its own headers, but nothing of the reason's.
        colour = await _cli(dict(env, TTY_COMPATIBLE="1"), "audit")
        assert "\x1b]8" not in colour  # no OSC 8 hyperlink
        plain = RICH_SGR.sub("", colour)
        assert "\x1b" not in plain and "\x9b" not in plain and "\u202e" not in plain
        for text in LITERAL:
            assert text in plain, (text, plain)
        assert "\x1b[31m" not in colour

        # --json keeps the text exactly, every control character escaped by JSON itself.
        raw = await _cli(env, "--json", "audit")
        assert "\x1b" not in raw and "\u202e" not in raw
        event = json.loads(raw)[0]
        assert (event["actor"], event["reason"], event["details"]) == ("mallory", HOSTILE, {"note": HOSTILE})
