"""What every command checks before any work: its output paths, and which
errors the ``cydrop`` command reports as a usage error.

Every command checks its options, inputs and output paths first, inside
:func:`checking_options`, so that a typo costs a message (exit code 2), not
a lost run; an error raised later, by the work itself, is not a usage error
and keeps its traceback.
"""
import contextlib
import os

__all__ = ["UsageError", "check_output_path", "checking_options", "fill_defaults", "refuse_ineffective"]


class UsageError(Exception):
    """A command's option or input refused before any work began."""


@contextlib.contextmanager
def checking_options():
    """The block checks a command's options: a ValueError, TypeError or
    ImportError raised inside it is a :class:`UsageError`."""
    try:
        yield
    except (ValueError, TypeError, ImportError) as exc:
        raise UsageError(str(exc)) from exc


def refuse_ineffective(rules):
    """Refuse an option given where it would have no effect: the user meant
    something the command would silently not do.

    Every command states its mode-dependent options here, so that each
    refusal reads the same. An option whose effect depends on the mode has
    the default None (the mode decides the value), so that "given" is exact.

    Parameters
    ----------
    rules : iterable of (str, bool, str or None)
        ``(option, given, needs)``: the option as the user spells it, whether
        it was given, and what it needs that the command line lacks (None if
        it has an effect as given).

    Raises
    ------
    ValueError
        "``option`` needs ``needs``", for the first such option.

    Examples
    --------
    >>> refuse_ineffective([("--extended-epochs", True, "--extended")])
    Traceback (most recent call last):
    ...
    ValueError: --extended-epochs needs --extended
    """
    for option, given, needs in rules:
        if given and needs is not None:
            raise ValueError(f"{option} needs {needs}")


def fill_defaults(args, defaults):
    """Give each option of ``defaults`` ({attribute: value}) that the command
    line left None its default: the options refuse_ineffective checks
    default to None, so that "given" is exact, and take their value here."""
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def check_output_path(path, option, *, plot=False):
    """The file ``option`` will write, proven writable by creating it (and
    removing it again if it did not exist); ValueError naming the option
    otherwise.

    Parameters
    ----------
    path : str
        The path as the user gave it (relative to the working directory).
    option : str
        The option that named it, e.g. ``"--json"``: every message starts with it.
    plot : bool
        A figure: the extension must be a format matplotlib writes (none
        means ``.png``, added to the returned path), and matplotlib must be
        installed (ImportError naming the option).

    Returns
    -------
    str
        The path that will be written.
    """
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise ValueError(f"{option} {path!r} is a folder, expected a file path")
    if plot:
        path = _figure_path(path, option)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        raise ValueError(f"{option} {path!r}: folder {folder!r} {what}")
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):   # appends nothing: an existing file keeps its contents until written
            pass
    except OSError as exc:
        raise ValueError(f"{option} {path!r} cannot be written: {exc.strerror or exc}") from None
    if not existed:
        os.remove(path)
    return path


def _figure_path(path, option):
    """path with a format matplotlib writes (.png when it has no extension)."""
    try:
        import matplotlib  # noqa: F401  (first: a submodule already imported would be found without it)
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ImportError(f"{option} needs matplotlib: pip install matplotlib") from None
    ext = os.path.splitext(path)[1]
    if not ext:
        return path + ".png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext[1:].lower() not in formats:
        raise ValueError(f"{option} {path!r}: matplotlib cannot write {ext!r} files; give a name ending in "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    return path
