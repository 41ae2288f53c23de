"""Zip a package folder the way Core Tools zips a custom handler app.

Azure/azure-functions-core-tools, src/Cli/func/Helpers/ZipHelper.cs, `CreateZip`
(commit 3ee97a6337055edd6afe48f9a51786a09772f427): one entry per file, no directory
entries, "created by" Unix (3), external attributes 0100777 for host.json's
`customHandler.description.defaultExecutablePath` and 0100666 for every other file.

Usage: zip_package.py FOLDER OUT.zip EXECUTABLE FILE...  (FILE: paths relative to FOLDER)
Fixed timestamps, so the same inputs give the same bytes.
"""

import os
import sys
import zipfile

EXECUTABLE_MODE = 0o100777
FILE_MODE = 0o100666
CREATED_BY_UNIX = 3
EPOCH = (1980, 1, 1, 0, 0, 0)


def main(folder, out, executable, files):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.create_system = CREATED_BY_UNIX
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = EXECUTABLE_MODE if name == executable else FILE_MODE
            info.external_attr = mode << 16
            with open(os.path.join(folder, name), "rb") as f:
                archive.writestr(info, f.read())


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
