"""Fail when the app's translation catalogs are stale (``tox -e catalogs``, part of ``make test``).

Stale means: a translatable string of the code without an entry in a catalog, or an entry the
code no longer has (``makemessages`` run on a copy of the app finds them); an entry without a
translation, or a fuzzy one; a compiled ``.mo`` that is missing or says something other than its
``.po``. ``make messages`` brings the catalogs up to date; the translations are then written by
hand. Needs GNU gettext (``xgettext``, ``msgmerge``, ``msgfmt``; Debian: ``apt-get install
gettext``).
"""

from __future__ import annotations

import ast
import gettext
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "src" / "django_polls"
LOCALE = APP / "locale"
#: The languages the app ships (the issue's: Spanish, French, German, Brazilian Portuguese).
LANGUAGES = ("de", "es", "fr", "pt_BR")
#: How ``make messages`` runs makemessages, so the catalogs carry no line numbers to go stale.
MAKEMESSAGES = ["makemessages", "--no-location", "--no-obsolete"]

Key = tuple[str | None, str, str | None]  # msgctxt, msgid, msgid_plural


class Entry:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.flags: set[str] = set()

    @property
    def key(self) -> Key:
        return (self.fields.get("msgctxt"), self.fields["msgid"], self.fields.get("msgid_plural"))

    @property
    def translations(self) -> list[str]:
        return [value for name, value in self.fields.items() if name.startswith("msgstr")]


def read_po(path: Path) -> dict[Key, Entry]:
    """The entries of a ``.po`` file (the header and obsolete ``#~`` entries left out)."""
    entries: list[Entry] = []
    entry = Entry()
    field = ""
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if "msgid" in entry.fields:
                entries.append(entry)
            entry, field = Entry(), ""
        elif line.startswith("#,"):
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry.fields[field] += ast.literal_eval(line)
        else:
            field, _, value = line.partition(" ")
            entry.fields[field] = ast.literal_eval(value)
    return {entry.key: entry for entry in entries if entry.fields["msgid"]}


def fail(message: str) -> None:
    print(f"STALE: {message}", file=sys.stderr)


def main() -> int:
    for tool in ("xgettext", "msgmerge", "msgfmt"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: install GNU gettext (apt-get install gettext).")
            return 2
    problems = 0
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "django_polls"
        shutil.copytree(APP, copy, ignore=shutil.ignore_patterns("__pycache__"))
        languages = [arg for language in LANGUAGES for arg in ("-l", language)]
        subprocess.run(
            [sys.executable, "-m", "django", *MAKEMESSAGES, *languages],
            cwd=copy,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for language in LANGUAGES:
            po = LOCALE / language / "LC_MESSAGES" / "django.po"
            mo = po.with_suffix(".mo")
            if not po.exists():
                fail(f"{po} is missing (make messages)")
                problems += 1
                continue
            committed = read_po(po)
            fresh = read_po(copy / "locale" / language / "LC_MESSAGES" / "django.po")
            for key in sorted(fresh.keys() - committed.keys(), key=str):
                fail(f"{language}: no entry for {key[1]!r} (make messages, then translate it)")
                problems += 1
            for key in sorted(committed.keys() - fresh.keys(), key=str):
                fail(f"{language}: {key[1]!r} is no longer in the code (make messages)")
                problems += 1
            for key, entry in committed.items():
                if "fuzzy" in entry.flags:
                    fail(f"{language}: {key[1]!r} is fuzzy: check its translation")
                    problems += 1
                elif not all(entry.translations):
                    fail(f"{language}: {key[1]!r} has no translation")
                    problems += 1
            compiled = Path(scratch) / f"{language}.mo"
            check = subprocess.run(
                ["msgfmt", "--check", "-o", str(compiled), str(po)],
                capture_output=True,
                text=True,
            )
            if check.returncode != 0:
                fail(f"{language}: msgfmt --check: {check.stderr.strip()}")
                problems += 1
                continue
            if not mo.exists():
                fail(f"{mo} is missing (make messages)")
                problems += 1
                continue
            with mo.open("rb") as shipped, compiled.open("rb") as expected:
                if (
                    gettext.GNUTranslations(shipped)._catalog  # type: ignore[attr-defined]
                    != gettext.GNUTranslations(expected)._catalog  # type: ignore[attr-defined]
                ):
                    fail(f"{mo} differs from its .po (make messages)")
                    problems += 1
    if problems:
        print(f"{problems} problem(s) in the catalogs of {APP.relative_to(APP.parents[1])}.")
        return 1
    print(f"The catalogs of {', '.join(LANGUAGES)} are complete and compiled.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
