"""Which files make cinder's configuration: the config parameter, plus --config-file and
--config-dir of additional_parameters.

Exports: config_sources, watched_paths.

Apart from config.py (and its dataclasses) because every monitor needs these for its cache
fingerprints, while it parses cinder.conf only when a cache is stale.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import List, Sequence, Tuple


def config_sources(config: str, additional_arguments: Sequence[str]) -> Tuple[List[str], List[str]]:
    """The config files and directories the daemon will read: the config parameter plus any
    --config-file / --config-dir in additional_parameters, in order."""
    files: List[str] = [config]
    dirs: List[str] = []
    args = list(additional_arguments)
    for index, arg in enumerate(args):
        for option, target in (("--config-file", files), ("--config-dir", dirs)):
            if arg == option and index + 1 < len(args):
                target.append(args[index + 1])
            elif arg.startswith(option + "="):
                target.append(arg.split("=", 1)[1])
    return files, dirs


def watched_paths(files: Sequence[str], dirs: Sequence[str]) -> List[str]:
    """Every path whose change may change the configuration, for cache fingerprints."""
    paths = list(files)
    for directory in dirs:
        paths.append(directory)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        paths += [os.path.join(directory, n) for n in names if n.endswith(".conf")]
    return paths
