"""Make asv's published HTML work offline: no script or style sheet from a CDN.

    python benchmarks/asv_offline.py benchmarks/.asv/html       # after `asv publish`

asv 0.6's index.html loads jQuery, flot (and its time, selection, categories and orderBars
plugins), stupidtable, blueimp-md5 and Bootstrap (script and style sheet) from public CDNs;
without internet the page only shows "Can not determine continental origin of swallow".
This copies the same libraries from `benchmarks/www_vendor/` (committed; versions, sources
and licenses in its README.md) into `<html>/vendor/` and points every such <script> and
<link> of the published .html files at them, dropping the CDN-only attributes (integrity,
crossorigin, referrerpolicy). A CDN reference it has no local file for is an error (exit 1):
a newer asv that loads something else must not silently go back online. Hyperlinks (<a>)
are left alone. Running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "www_vendor"

# The last part of a CDN address -> the vendored file (relative to vendor/).
LOCAL = {
    "jquery-3.3.1.min.js": "jquery.min.js",
    "jquery.flot.min.js": "jquery.flot.js",
    "jquery.flot.time.min.js": "jquery.flot.time.js",
    "jquery.flot.selection.min.js": "jquery.flot.selection.js",
    "jquery.flot.categories.min.js": "jquery.flot.categories.js",
    "jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupidtable.min.js",
    "md5.min.js": "md5.min.js",
    "bootstrap.min.js": "bootstrap.min.js",
    "bootstrap.min.css": "css/bootstrap.min.css",
}

TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE | re.DOTALL)
URL_ATTR = re.compile(r"""\b(src|href)\s*=\s*(["'])(https?:)?//([^"']+)\2""", re.IGNORECASE)
CDN_ONLY = re.compile(r"""\s+(integrity|crossorigin|referrerpolicy)\s*=\s*(["'])[^"']*\2""", re.IGNORECASE)


class RemoteReference(Exception):
    """A <script> or <link> points at the network and no vendored file stands in for it."""


def rewrite(html: str, prefix: str = "vendor/") -> tuple[str, int]:
    """`html` with every remote <script src>/<link href> pointed at prefix + the local file."""
    count = 0

    def tag(match: re.Match) -> str:
        nonlocal count
        text = match.group(0)
        url = URL_ATTR.search(text)
        if url is None:
            return text
        name = url.group(4).rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        if name not in LOCAL:
            raise RemoteReference(f"no local copy for {url.group(0)!r} (add it to benchmarks/www_vendor)")
        count += 1
        text = text[:url.start()] + f'{url.group(1)}="{prefix}{LOCAL[name]}"' + text[url.end():]
        return CDN_ONLY.sub("", text)

    return TAG.sub(tag, html), count


def remote_references(html: str) -> list[str]:
    """The http(s):// or protocol-relative addresses of <script> and <link> tags in `html`."""
    found = []
    for match in TAG.finditer(html):
        url = URL_ATTR.search(match.group(0))
        if url is not None:
            found.append(url.group(0))
    return found


def make_offline(html_dir: Path) -> int:
    """Vendor the libraries into html_dir/vendor and rewrite its .html files; tags rewritten."""
    if not (html_dir / "index.html").is_file():
        raise FileNotFoundError(f"{html_dir}/index.html: run asv publish first")
    shutil.copytree(VENDOR, html_dir / "vendor", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("README.md"))
    total = 0
    for path in sorted(html_dir.rglob("*.html")):
        if (html_dir / "vendor") in path.parents:
            continue
        prefix = "../" * (len(path.relative_to(html_dir).parts) - 1) + "vendor/"
        text, count = rewrite(path.read_text(encoding="utf-8"), prefix)
        if count:
            path.write_text(text, encoding="utf-8")
            total += count
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="asv's html_dir (benchmarks/.asv/html)")
    args = parser.parse_args(argv)
    try:
        count = make_offline(args.html_dir)
    except (RemoteReference, FileNotFoundError) as exc:
        print(f"asv_offline: {exc}", file=sys.stderr)
        return 1
    print(f"asv_offline: {count} CDN references now load from {args.html_dir}/vendor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
