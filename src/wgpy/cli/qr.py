"""`wgpy qr FILE [--png OUT]`: a wg-quick file as the QR code the WireGuard mobile apps scan
("Create from QR code"): the file's text itself, in the terminal or as a PNG.

The code is drawn by segno (an optional dependency: `pip install 'wgpy[web]'`). The text is
the file as it is, comments included (the apps ignore them), so a peer's name comment travels
to the phone too; only trailing blank space is trimmed, which costs modules and means nothing.
"""

import argparse
import sys
from types import ModuleType

PNG_SCALE = 6  # pixels per module: sharp on a screen a phone camera looks at
INSTALL_HINT = "pip install 'wgpy[web]'"


def segno_module() -> ModuleType:
    """segno, or RuntimeError saying how to install it."""
    try:
        import segno
    except ImportError as exc:
        raise RuntimeError(f"QR codes need the segno package ({INSTALL_HINT})") from exc
    return segno


def config_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().rstrip() + "\n"


def write_png(text: str, out: str) -> None:
    """`text` as a QR code in the PNG file `out` (error correction as high as fits)."""
    segno_module().make(text, error="m", boost_error=True).save(out, scale=PNG_SCALE, border=4)


def print_terminal(text: str) -> None:
    """`text` as a QR code drawn with half blocks on stdout (two modules a character)."""
    segno_module().make(text, error="m", boost_error=True).terminal(out=sys.stdout, compact=True)


def cmd_qr(prog: str, args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{prog} qr", description="Show a wg-quick file as a QR code for the mobile apps.")
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--png", metavar="OUT", help="write a PNG instead of printing")
    try:
        options = parser.parse_args(args)
    except SystemExit as exc:  # argparse has printed the usage or the error
        return int(exc.code or 0)
    try:
        text = config_text(options.file)
        if options.png:
            write_png(text, options.png)
        else:
            print_terminal(text)
    except (OSError, UnicodeDecodeError, RuntimeError) as exc:
        print(f"{prog} qr: {options.file}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # segno: too much data for any QR code version
        print(f"{prog} qr: {options.file}: does not fit a QR code ({exc})", file=sys.stderr)
        return 1
    return 0
