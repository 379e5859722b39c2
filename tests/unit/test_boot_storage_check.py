"""boot.js checks storage by opening LocalChat's own database at the version this build
needs (so it also sees a blocked upgrade first thing): that version must be the one
db-bridge.js's Dexie schema asks for, which Dexie stores multiplied by 10."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _js(name: str) -> str:
    return (ROOT / "web" / "js" / name).read_text(encoding="utf-8")


def test_the_storage_check_opens_the_database_at_the_schemas_version() -> None:
    boot, bridge = _js("boot.js"), _js("db-bridge.js")
    boot_name = re.search(r'^const DB_NAME = "([^"]+)";', boot, re.M)
    bridge_name = re.search(r'^export const DB_NAME = "([^"]+)";', bridge, re.M)
    assert boot_name and bridge_name and boot_name.group(1) == bridge_name.group(1)
    boot_version = re.search(r"^const DB_IDB_VERSION = (\d+);", boot, re.M)
    schema = bridge[bridge.index("const SCHEMA"):bridge.index("export const SCHEMA_VERSION")]
    versions = [int(v) for v in re.findall(r"^\s+version: (\d+),", schema, re.M)]
    assert boot_version and versions
    assert int(boot_version.group(1)) == max(versions) * 10
