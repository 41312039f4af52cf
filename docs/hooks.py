"""MkDocs hook (mkdocs.yml `hooks:`): the Configuration reference page, generated on every build.

The page is `tadistill.config.reference.reference_markdown()`, rendered from the config tree that
`tadistill config show` prints, and added as a virtual file (`File.generated`, MkDocs 1.6), so
nothing is written into docs/ and the page is never stale. An option without a description fails
the build with the option's key. This file is excluded from the pages (`exclude_docs`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

PAGE = "reference/configuration.md"


def on_files(files: Files, *, config) -> Files:
    try:
        from tadistill.config.reference import reference_markdown
    except ImportError:  # mkdocs run from a checkout where the package is not installed
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tadistill.config.reference import reference_markdown
    if PAGE in files.src_uris:  # a stale copy on disk never wins over the generated page
        files.remove(files.src_uris[PAGE])
    files.append(File.generated(config, PAGE, content=reference_markdown()))
    return files
