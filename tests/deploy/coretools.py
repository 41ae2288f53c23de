"""What `func azure functionapp publish` uploads, emulated from Core Tools' source.

Azure/azure-functions-core-tools at commit 3ee97a6337055edd6afe48f9a51786a09772f427:
- src/Cli/func/Common/GitIgnoreParser.cs: the `.funcignore` matcher, a port of
  codemix/gitignore-parser, not git's rules;
- src/Cli/func/Common/FileSystemHelpers.cs, `GetLocalFiles` / `GetFiles`: the walk, with the
  folders and files it always leaves out;
- src/Cli/func/Helpers/ZipHelper.cs, `GetAppZipFile`: reads `.funcignore` from the folder it
  publishes and zips what `GetLocalFiles` accepts.
"""

import os
import re

# FileSystemHelpers.GetLocalFiles: skipped at any depth, names compared case-insensitively.
IGNORED_DIRECTORIES = (".git", ".vscode")
IGNORED_FILES = (".funcignore", ".gitignore", "local.settings.json", "project.lock.json")

# GitIgnoreParser.PrepareRegexPattern: these characters are escaped, then `**` becomes `(.+)`
# and `*` becomes `([^\/]+)`.
_SPECIAL = re.compile(r"[\-\[\]\/\{\}\(\)\+\?\.\\\^\$\|]")


def _prepare(pattern):
    escaped = _SPECIAL.sub(lambda m: "\\" + m.group(0), pattern)
    return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")


def _combined(patterns):
    # `new Regex("^((" + join(")|(") + "))\\b", RegexOptions.ECMAScript)`, or "$^" (matches
    # nothing) for an empty list. ECMAScript: \b is ASCII-only, as re.ASCII.
    if not patterns:
        return re.compile("$^")
    body = ")|(".join(_prepare(p) for p in sorted(patterns))
    return re.compile("^((" + body + "))\\b", re.ASCII)


class GitIgnoreParser:
    """GitIgnoreParser.cs: lines split on \\n and trimmed; `#` lines and empty lines dropped; a
    leading `!` makes a keep pattern, a leading `/` is dropped. A path is accepted when a keep
    pattern matches it or no deny pattern does."""

    def __init__(self, text):
        deny, keep = [], []
        for line in text.split("\n"):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negative = line.startswith("!")
            if negative:
                line = line[1:]
            if line.startswith("/"):
                line = line[1:]
            (keep if negative else deny).append(line)
        self._deny = _combined(deny)
        self._keep = _combined(keep)

    def accepts(self, path):
        if path == "/":
            path = ""
        # IsMatch: a match anywhere from the anchored start, so `search` with `^`.
        return bool(self._keep.search(path)) or not self._deny.search(path)


def local_files(root, parser=None):
    """FileSystemHelpers.GetLocalFiles(root, parser): relative paths with `/`, files only (no
    directory entries), in the order Core Tools walks (a folder's files, then its folders)."""
    out = []

    def walk(folder):
        entries = sorted(os.listdir(folder))
        for name in entries:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and name.lower() not in IGNORED_FILES:
                out.append(path)
        for name in entries:
            path = os.path.join(folder, name)
            if os.path.isdir(path) and name.lower() not in IGNORED_DIRECTORIES:
                walk(path)

    walk(root)
    relative = [os.path.relpath(p, root).replace(os.sep, "/") for p in out]
    return [p for p in relative if parser is None or parser.accepts(p)]


def upload_set(root):
    """What `func azure functionapp publish` run in `root` zips: ZipHelper.GetAppZipFile reads
    `<root>/.funcignore` when there is one."""
    ignore = os.path.join(root, ".funcignore")
    parser = None
    if os.path.isfile(ignore):
        with open(ignore, encoding="utf-8") as f:
            parser = GitIgnoreParser(f.read())
    return set(local_files(root, parser))
