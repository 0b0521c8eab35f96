"""What the input tests share: a valid profile and `selfhost validate` through the CLI."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from selfhost.cli import main

#: the smallest valid profile; tests append to it or replace its lines
PROFILE = """\
customer:
  name: ACME
  id: acme
  contact_email: dpo@acme.example
  residency: DE
hosts:
  app:
    - name: chat1
      address: 192.0.2.10
tls:
  domain: chat.acme.example
"""


def validate(tmp_path: Path, text: str) -> tuple[int, str]:
    """Exit code and output of ``selfhost validate`` on ``text``, written to
    ``tmp_path/p.yaml``; the profile's path reads ``P`` and ``tmp_path`` ``T``."""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    return result.exit_code, result.output.removeprefix("error: ").replace(
        str(path), "P").replace(str(tmp_path), "T").strip()
