"""Compile the translation catalogs (locale/*/LC_MESSAGES/*.po) into the
.mo files Django reads, with Babel (issue #4).

`manage.py compilemessages` needs GNU gettext's msgfmt on the machine; the
portal's own setup (`make run`, `make test`, a production build) must not
depend on a system package, so this command does the same in Python. The
.mo files are build output (gitignored): run this after every checkout or
change of a .po file. Extracting strings (`makemessages`) is a developer's
job and does need GNU gettext.

A broken catalog fails loudly: a syntax error in a .po file or a
translation whose placeholders do not match its msgid (which would raise
KeyError or print nonsense at runtime) stops the command with an error.
Fuzzy and untranslated entries are left out of the .mo (Django then shows
the Dutch original) and reported; --strict turns them into an error.
"""

import io
import os
import re
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def catalog_paths(locale_dirs) -> list[Path]:
    """Every <locale dir>/<language>/LC_MESSAGES/<domain>.po, sorted."""
    found: list[Path] = []
    for locale_dir in locale_dirs:
        found.extend(Path(locale_dir).glob("*/LC_MESSAGES/*.po"))
    return sorted(found)


# What a line of a .po file may be: a comment, a keyword with a string, or
# a string continuing the previous one. Babel's reader is lenient (it reads
# an unterminated string as if it were closed); a catalog that msgfmt would
# refuse is refused here as well.
_PO_LINE = re.compile(
    r"""^(?:\#.*|(?:msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)[ \t]+"(?:[^"\\]|\\.)*"|"(?:[^"\\]|\\.)*")?[ \t]*$"""
)


class CatalogSyntaxError(ValueError):
    pass


def check_syntax(po_path: Path) -> None:
    """Raise CatalogSyntaxError at the first line that is not valid PO syntax."""
    text = po_path.read_text(encoding="utf-8")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not _PO_LINE.match(line):
            raise CatalogSyntaxError(f"line {lineno}: not valid PO syntax: {line[:80]!r}")


def read_catalog(po_path: Path):
    """The catalog of one .po file; CatalogSyntaxError or Babel's
    PoFileError when it is malformed."""
    check_syntax(po_path)
    language = po_path.parent.parent.name
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=po_path.stem, abort_invalid=True)
    if catalog.locale is None:
        # An empty "Language:" header (as makemessages writes it for a new
        # catalog) clears the locale; the directory names it.
        catalog.locale = language
    return catalog


def _write_if_changed(path: Path, content: bytes) -> bool:
    """Replace the file atomically (a server or a test run reading it at the
    same moment sees the old or the new catalog, never half of one)."""
    try:
        if path.read_bytes() == content:
            return False
    except FileNotFoundError:
        pass
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return True


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/*.po into .mo files with Babel (no GNU gettext needed)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Fail when a catalog has untranslated or fuzzy entries.",
        )

    def handle(self, *args, strict: bool = False, **options):
        paths = catalog_paths(settings.LOCALE_PATHS)
        if not paths:
            raise CommandError(f"No .po files found under {[str(p) for p in settings.LOCALE_PATHS]}.")
        problems: list[str] = []
        for po_path in paths:
            try:
                catalog = read_catalog(po_path)
            except (CatalogSyntaxError, PoFileError, UnicodeDecodeError) as exc:
                raise CommandError(f"{po_path}: broken catalog: {exc}") from exc

            errors = [
                f"{po_path}:{message.lineno}: {message.id!r}: {error}"
                for message, message_errors in catalog.check()
                for error in message_errors
            ]
            if errors:
                raise CommandError("Translations that do not fit their original:\n" + "\n".join(errors))

            messages = [m for m in catalog if m.id]
            fuzzy = [m for m in messages if m.fuzzy]
            untranslated = [
                m for m in messages if not m.fuzzy and not all(m.string if m.pluralizable else [m.string])
            ]
            if fuzzy or untranslated:
                problems.append(f"{po_path}: {len(untranslated)} untranslated, {len(fuzzy)} fuzzy")

            buffer = io.BytesIO()
            write_mo(buffer, catalog, use_fuzzy=False)
            mo_path = po_path.with_suffix(".mo")
            changed = _write_if_changed(mo_path, buffer.getvalue())
            if options["verbosity"] >= 1:
                self.stdout.write(
                    f"{mo_path}: {len(messages)} messages ({'written' if changed else 'up to date'})"
                )

        for problem in problems:
            self.stderr.write(problem)
        if strict and problems:
            raise CommandError("Catalogs are incomplete (see above).")
