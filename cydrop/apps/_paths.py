"""The one check of an output path given on the command line.

Every command that writes a file checks its path with
:func:`check_output_path` before any work begins, so that a typo costs a
message, not a lost run.
"""
import os


def check_output_path(path, option):
    """Refuse a path that cannot be written as a file; nothing is created.

    Parameters
    ----------
    path : str
        The path as the user gave it (relative to the working directory).
    option : str
        The option that named it, e.g. ``"--json"``: every message starts with it.

    Raises
    ------
    ValueError
        If ``path`` is a folder, its folder does not exist or cannot be
        written to, or it is an existing file that cannot be written.
    """
    if os.path.isdir(path):
        raise ValueError(f"{option} {path!r} is a folder, expected a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        raise ValueError(f"{option} {path!r}: folder {folder!r} {what}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{option} {path!r}: folder {folder!r} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{option} {path!r} exists and is not writable")
